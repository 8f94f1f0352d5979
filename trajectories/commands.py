"""`prefmix trajectories pairs FILE... --mode trajectory|step|labels|kto [--json] [--out FILE.parquet]`.

prefmix/cli.py's command table registers it:
    Command("trajectories pairs", PAIRS_HELP, add_pairs_arguments, pairs, PAIRS_DESCRIPTION)
This module gives the arguments and the handler. With --json the handler prints ONE JSON line whose numbers reconcile:
trajectories_in == trajectories_in_rows + trajectories_rejected (and rows_out beside them).
--out writes the rows as Parquet (canonical preference schema for trajectory/step, the step-label
or KTO schema otherwise) and the rejections next to it as <stem>.rejections.parquet.
"""

from __future__ import annotations

import argparse

MODES = ("trajectory", "step", "labels", "kto")
PAIRS_HELP = "derive trajectory pairs, step pairs, step labels or KTO rows from agent runs"
PAIRS_DESCRIPTION = (
    "Derive preference rows (trajectory pairs, step pairs), PRM step labels or KTO rows from agent runs "
    "(ATIF .json, chat .jsonl, trajectory .parquet). Every run ends in a row or a counted rejection."
)


def add_pairs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="trajectory files of one delivery")
    parser.add_argument("--mode", choices=MODES, default="trajectory", help="what to derive (default: trajectory)")
    parser.add_argument("--reviews", metavar="FILE", help="labels: human step reviews (.parquet/.jsonl); without it, Monte Carlo labels from outcomes")
    parser.add_argument("--vendor", default="unknown", help="vendor of --reviews")
    parser.add_argument("--mc", choices=("hard", "soft"), help="labels without reviews: hard (any rollout resolved) or soft (share)")
    parser.add_argument("--zero-rating", choices=("good", "bad"), help="labels from reviews: what a 0 rating means (default good)")
    parser.add_argument("--max-pairs-per-task", type=int, metavar="N", help="pairs kept per task and environment (default 4)")
    parser.add_argument("--seed", type=int, help="seed of the pair order (default 0)")
    parser.add_argument("--domain", help="domain of the derived rows (default code)")
    parser.add_argument("--out", metavar="FILE.parquet", help="write the rows here (and the rejections beside it)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line")


def _rules(args: argparse.Namespace):  # -> Rules (imported lazily: `prefmix --help` stays fast)
    from pydantic import ValidationError

    from prefmix.errors import UserError
    from prefmix.trajectories.config import Rules

    data: dict = {}
    for key in ("seed", "domain", "max_pairs_per_task"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.zero_rating:
        data["reviews"] = {"zero_rating": args.zero_rating}
    if args.mc:
        data["monte_carlo"] = {"estimate": args.mc}
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "--" + str(error["loc"][0]).replace("_", "-")
        raise UserError(f"trajectories pairs: {name}: {error['msg']}") from None


def pairs(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from prefmix.errors import UserError
    from prefmix.trajectories.job import check_request, derive_files

    out = Path(args.out) if args.out else None
    check_request(args.mode, args.reviews, out)
    if args.mc and (args.mode != "labels" or args.reviews):
        raise UserError("trajectories pairs: --mc applies to --mode labels without --reviews")
    done = derive_files(args.files, args.mode, _rules(args), reviews=args.reviews, vendor=args.vendor, out=out)
    summary = done.as_json()
    if args.json:
        print(json.dumps(summary, default=str, separators=(",", ":")))
        return 0
    s = done.summary
    print(f"{s.trajectories_in} trajectories from {len(done.files)} file(s) -> {s.rows_out} {args.mode} rows "
          f"({s.trajectories_in_rows} trajectories in rows, {s.trajectories_rejected} rejected)")
    for reason, count in s.rejected_by_reason.items():
        print(f"  rejected {reason}: {count}")
    for reason, count in s.candidates_dropped_by_reason.items():
        print(f"  candidate pairs dropped {reason}: {count}")
    for name, count in s.counts.items():
        print(f"  {name}: {count}")
    for name in ("out", "rejections_out"):
        if summary.get(name):
            print(f"{name}: {summary[name]}")
    return 0
