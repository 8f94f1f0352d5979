"""Key-pass worker: `python -m prefmix.blending.keyworker SPEC.json` writes one Arrow IPC key file per input file.

A plain child process (not multiprocessing) so that blend() can be called from
any script: multiprocessing's spawn re-imports the caller's main module, which
breaks scripts without an `if __name__ == "__main__"` guard, and fork is unsafe
once Polars' thread pool runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from prefmix.errors import UserError


def main(argv: list[str]) -> int:
    from prefmix.blending.keys import Input, file_keys

    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        for path, source, rows, index, out in spec["jobs"]:
            file_keys(Input(path, source, rows), index).write_ipc(out)
    except UserError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
