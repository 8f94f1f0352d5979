"""One derivation over a set of trajectory files, as the CLI (`prefmix trajectories pairs`) and the
`trajectories` flow run it: read and validate the files, derive, write rows and rejections.

    result = derive_files(["runs.json"], "step", Rules(), out=Path("step.parquet"))
    result.summary.reconciled   # trajectories_in == trajectories_in_rows + trajectories_rejected
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from prefmix.contract import Contract
from prefmix.errors import UserError
from prefmix.hashing import short_hash
from prefmix.trajectories.config import Mode, Rules
from prefmix.trajectories.derive import DerivationSummary
from prefmix.trajectories.readers import TrajectoryFile


class DerivedFiles(Contract):
    """What one derivation read, what it made of it, and where it wrote it."""

    summary: DerivationSummary
    files: list[TrajectoryFile]
    out: str | None = None
    rejections_out: str | None = None

    def as_json(self) -> dict[str, object]:
        written = {k: v for k, v in (("out", self.out), ("rejections_out", self.rejections_out)) if v is not None}
        return {**self.summary.as_json(), "files": [f.model_dump() for f in self.files], **written}


def check_request(mode: Mode, reviews: str | None, out: Path | None) -> None:
    """Mistakes in what was asked, found before any file is read (one line each)."""
    if reviews and mode != "labels":
        raise UserError("trajectories pairs: --reviews applies to --mode labels only")
    if out is not None and out.is_dir():
        raise UserError(f"{out}: --out must be a Parquet file path, found a directory")


def default_out(folder: Path, mode: Mode, files: list[TrajectoryFile]) -> Path:
    """A stable place for a derivation's rows: the same files and mode give the same path."""
    return folder / f"{mode}-{short_hash(sorted(f.sha256 for f in files), 12)}.parquet"


def derive_files(paths: Sequence[str | Path], mode: Mode, rules: Rules, *, reviews: str | None = None,
                 vendor: str = "unknown", out: Path | None = None, out_dir: Path | None = None) -> DerivedFiles:
    """Derive `mode` rows from the trajectory files; rows to `out` (or a stable name in `out_dir`), else kept
    in memory only. Bad files or reviews are one-line InputErrors, before anything is written."""
    from prefmix.trajectories.derive import derive
    from prefmix.trajectories.output import write_outputs
    from prefmix.trajectories.readers import read_trajectories
    from prefmix.trajectories.reviews import read_reviews

    check_request(mode, reviews, out)
    trajectories, files = read_trajectories(list(paths))
    read = read_reviews(reviews, vendor=vendor) if reviews else None
    result = derive(trajectories, mode, rules, read)
    target = out if out is not None else default_out(out_dir, mode, files) if out_dir is not None else None
    written = write_outputs(result, target) if target is not None else {}
    return DerivedFiles(summary=result.summary, files=files, **written)
