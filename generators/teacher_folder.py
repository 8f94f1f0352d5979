"""What the teacher builders share: same-bytes JSON, a build swapped into place, the one-line error contract.

tiny_teacher.py and small_teacher.py run as scripts in the teacher interpreter, which has no prefmix installed,
so they import this module by its file name there: it uses the stdlib only.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable


def write_json(path: Path, obj: Any) -> None:
    """Sorted keys and nothing else variable: the same object always gives the same bytes."""
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    """The JSON in path, or None if it is missing or not JSON (an unfinished build)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def build_folder(out: Path, marker: str, is_built: Callable[[Path], bool], write: Callable[[Path], None],
                 what: str, error: type[Exception] = RuntimeError) -> Path:
    """Run `write` into a temp dir beside `out`, then swap it into place (no-op if `out` is built already).

    `write` writes the marker file last: its presence means the folder is complete. Only an empty dir or an
    earlier build (it has the marker) is ever replaced, never user data.
    """
    out = Path(out).resolve()
    if is_built(out):
        return out
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / marker).exists())):
        raise error(f"{out} exists and is not a {what} build; refusing to overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        write(tmp)
        # mkdtemp makes 0700 and safetensors writes 0600; others must read the model.
        os.chmod(tmp, 0o755)
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        _swap_into_place(tmp, out, is_built)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _swap_into_place(tmp: Path, out: Path, is_built: Callable[[Path], bool]) -> None:
    """Rename tmp to out; a concurrent builder of the same build may win the race."""
    if out.exists():
        if is_built(out):  # another process finished first: identical bytes
            shutil.rmtree(tmp, ignore_errors=True)
            return
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, old)
        try:
            os.rename(tmp, out)
        finally:
            shutil.rmtree(old, ignore_errors=True)
        return
    try:
        os.rename(tmp, out)
    except OSError:
        if not is_built(out):
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def report(script: str, build: Callable[[], Path]) -> int:
    """The builders' exit contract: the folder on stdout and 0, or one line on stderr and 2."""
    try:
        path = build()
    except Exception as exc:  # noqa: BLE001 - one-line error contract for the caller
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{script}: {type(exc).__name__}: {msg}", file=sys.stderr)
        return 2
    print(path)
    return 0
