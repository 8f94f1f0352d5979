"""CLI: `prefmix batches`, `prefmix versions NAME`, `prefmix retract ...`, `prefmix publish BATCH --override`,
`prefmix lineage ...`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from prefmix.context import CONFIG_HELP, STORE_HELP
from prefmix.errors import UserError


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", help=STORE_HELP)
    parser.add_argument("--config", help=CONFIG_HELP)
    parser.add_argument("--json", action="store_true", help="print JSON")


def batch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("batch")
    common_arguments(parser)


def publish_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("batch")
    parser.add_argument("--override", action="store_true", required=True, help="required: publish despite the failed gate")
    parser.add_argument("--reason", required=True, help="why; recorded in the manifest")
    parser.add_argument("--by", help="who decided (default: the current user)")
    common_arguments(parser)


def trace_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("record_id")
    common_arguments(parser)


def _selectors(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--delivery", metavar="SHA256", help="rows of one delivery (vendor shard or prompt file), by its sha256")
    parser.add_argument("--annotator", metavar="ID", help="rows an annotator labeled")
    parser.add_argument("--vendor", metavar="NAME", help="rows of a labeling vendor")
    parser.add_argument("--teacher", metavar="NAME", help="synthetic rows a teacher wrote or judged (name or model id)")


def impact_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", nargs="?", help="an input's path, sha256 or generation run id (or use a selector)")
    _selectors(parser)
    parser.add_argument("--dataset", help="only versions of this dataset (with a selector)")
    common_arguments(parser)


def diff_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME vA vB | BATCH_A BATCH_B",
                        help="a dataset and two of its versions (each added and removed record id with its reason), "
                             "or two batch ids (rows per source and domain, config and inputs)")
    common_arguments(parser)


def versions_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="dataset name (the config's `dataset:`)")
    common_arguments(parser)


def retract_arguments(parser: argparse.ArgumentParser) -> None:
    _selectors(parser)
    parser.add_argument("--reason", required=True, help="why; recorded with the retraction")
    parser.add_argument("--dataset", help="retract from this dataset only (default: every dataset of the store)")
    parser.add_argument("--by", help="who decided (default: the current user)")
    parser.add_argument("--rebuild", action="store_true",
                        help="publish a corrected version of the dataset at once (needs --dataset, or a store with one dataset)")
    common_arguments(parser)


def reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("batch")
    parser.add_argument("--scratch", help="rebuild here instead of a temporary folder (kept)")
    common_arguments(parser)


def _context(args: argparse.Namespace) -> tuple[Any, str | None]:
    """(store, ledger_url) by the rule of prefmix.context; a read never creates the store."""
    from prefmix.context import resolve

    context = resolve(args.store, args.config)
    return context.store, context.ledger_url


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def _report(args: argparse.Namespace, data: Any, text: Callable[[Any], None], code: int = 0) -> int:
    """How every command here ends: `data` as JSON with --json, else `text(data)` prints it for people; exit `code`."""
    if args.json:
        _print_json(data)
    else:
        text(data)
    return code


def _table(header: list[str], rows: list[list[Any]]) -> None:
    cells = [header] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def cmd_batches(args: argparse.Namespace) -> int:
    from prefmix.lineage.audit import list_batches

    store, _ = _context(args)
    return _report(args, list_batches(store), lambda rows: _print_batches(rows, store.root))


def _print_batches(rows: list[dict[str, Any]], root: Path) -> None:
    if not rows:
        print(f"no batches in {root}")
        return
    _table(
        ["batch", "status", "latest", "rows", "failed checks", "path"],
        [
            [r["batch_id"], r["status"], "*" if r["latest"] else "", r["rows"], ", ".join(f"{c['name']}({c['severity']})" for c in r["failed_checks"]), r["path"]]
            for r in rows
        ],
    )


def cmd_publish(args: argparse.Namespace) -> int:
    from prefmix.lineage.publish import override

    store, ledger_url = _context(args)
    store.require()
    with store.lock("prefmix publish --override"):
        path = override(store, args.batch, args.reason, args.by, ledger_url=ledger_url)
    result = {"batch_id": args.batch, "status": "overridden", "path": str(path), "latest": store.latest()}
    return _report(args, result, lambda r: print(f"published {r['batch_id']} by override -> {r['path']} (latest: {r['latest']})"))


def cmd_show(args: argparse.Namespace) -> int:
    from prefmix.lineage.audit import show

    store, _ = _context(args)
    return _report(args, show(store, args.batch), _print_manifest)


def _print_manifest(data: dict[str, Any]) -> None:
    m = data["manifest"]
    code = m.get("code_version") or {}
    print(f"batch        {m['batch_id']}{'  (latest)' if data['latest'] else ''}")
    info = m.get("dataset")
    if info:
        news = [d for d in info["deliveries"] if d["status"] in ("new", "changed")]
        copies = [d for d in info["deliveries"] if d["status"] == "duplicate"]
        print(f"dataset      {info['name']} v{info['version']} (built on {'v' + str(info['base_version']) if info['base_version'] else 'nothing'},"
              f" night {info['day']}): {len(news)} new deliveries, {len(copies)} copies skipped, {info['new_prompts']} new prompts,"
              f" {info['generated_prompts']} generated with {info['requests']} requests")
        if info["excluded"]:
            print("left out      " + ", ".join(f"{k} {v}" for k, v in info["excluded"].items()))
        if info.get("changes"):
            c = info["changes"]
            print(f"changes      +{c['added']} -{c['removed']}  " + "; ".join(
                f"{kind}: " + ", ".join(f"{r} {n}" for r, n in reasons.items()) for kind, reasons in c["by_reason"].items() if reasons))
    print(f"path         {data['path']}")
    print(f"content hash {m['content_hash']}")
    print(f"rows         {m.get('rows')} in {len(m['files'])} files")
    print(f"created      {m.get('created_at')}  flow run {m.get('flow_run_id')}")
    print(f"code         {code.get('git_commit')}{' (dirty)' if code.get('git_dirty') else ''}  prefmix {code.get('package_version')}")
    print("status")
    for s in m.get("status_history") or []:
        print(f"  {s['at']}  {s['status']:<12} by {s['by']}" + (f"  ({s['reason']})" if s.get("reason") else ""))
    print("files")
    for f in m["files"]:
        print(f"  {f['path']}  {f['rows']} rows  {f['bytes']} bytes  {f['sha256'][:16]}")
    print("inputs")
    for i in m.get("inputs") or []:
        print(f"  {i['role']:<18} {i.get('path') or ''} {(i.get('sha256') or '')[:16]} {i.get('run_id') or ''}".rstrip())
    for r in m.get("synthetic_runs") or []:
        print(f"synthetic run {json.dumps(r, sort_keys=True, default=str)}")
    counts = m.get("counts") or {}
    print(f"counts       requested {json.dumps(counts.get('requested'))}  achieved {json.dumps(counts.get('achieved'))}  dedup removed {json.dumps(counts.get('dedup_removed'))}")
    gate = m.get("gate") or {}
    print(f"gate         {gate.get('verdict', 'not gated' if not gate else 'unknown')}")
    for c in gate.get("checks") or []:
        print(f"  {'ok ' if c.get('success') else 'FAIL'} {c.get('name')} [{c.get('severity')}] observed {json.dumps(c.get('observed'), default=str)}")


def cmd_trace(args: argparse.Namespace) -> int:
    from prefmix.lineage.audit import trace

    store, ledger_url = _context(args)
    data = trace(store, args.record_id, ledger_url)
    # as text, a record in no batch is a failed search (exit 1); as JSON, an empty answer
    return _report(args, data, _print_trace, code=0 if data["batches"] or args.json else 1)


def _print_trace(data: dict[str, Any]) -> None:
    if not data["batches"]:
        print(f"record {data['record_id']}: in no indexed batch")
    for hit in data["batches"]:
        print(f"batch {hit['batch_id']} ({hit['status']})  {hit.get('domain', '')} {hit.get('split', '')}".rstrip())
        print(f"  origin  {hit['origin_uri']} row {hit['origin_row']} sha256 {hit['origin_sha256']}")
        print(f"  source  {hit['source']}")
        if hit.get("generation"):
            print(f"  generation {json.dumps(hit['generation'], sort_keys=True, default=str)}")
        if hit.get("annotation"):
            print(f"  annotation {json.dumps(hit['annotation'], sort_keys=True, default=str)}")


def _selector(args: argparse.Namespace) -> tuple[str, str] | None:
    from prefmix.lineage.retract import selector

    given = {k: getattr(args, k, None) for k in ("delivery", "annotator", "vendor", "teacher")}
    return selector(given) if any(v is not None for v in given.values()) else None


def cmd_impact(args: argparse.Namespace) -> int:
    from prefmix.lineage.audit import impact, impact_selector

    store, ledger_url = _context(args)
    chosen = _selector(args)
    if chosen is not None and args.ref:
        raise UserError("lineage impact: give an input REF or a selector (--delivery/--annotator/--vendor/--teacher), not both")
    if chosen is None and not args.ref:
        raise UserError("lineage impact: give an input REF (path, sha256, run id) or a selector (--delivery/--annotator/--vendor/--teacher)")
    if chosen is not None:
        return _report(args, impact_selector(store, chosen[0], chosen[1], args.dataset, ledger_url), _print_selector_impact)
    return _report(args, impact(store, args.ref, ledger_url), _print_input_impact)


def _print_selector_impact(data: dict[str, Any]) -> None:
    if not data["versions"]:
        print(f"--{data['selector']['kind']} {data['selector']['value']}: no indexed version holds its rows")
        return
    _table(["dataset", "version", "batch", "status", "latest", "rows", "path"],
           [[v["dataset"] or "-", f"v{v['version']}" if v["version"] else "-", v["batch_id"], v["status"],
             "*" if v["latest"] else "", v["rows"], v.get("path", v["location"])] for v in data["versions"]])


def _print_input_impact(data: dict[str, Any]) -> None:
    if not data["batches"]:
        print(f"{data['ref']}: used by no indexed batch")
        return
    _table(
        ["batch", "status", "latest", "matched input", "path"],
        [[b["batch_id"], b["status"], "*" if b["latest"] else "", ", ".join(m["role"] for m in b["matched"]), b["location"]] for b in data["batches"]],
    )


def cmd_diff(args: argparse.Namespace) -> int:
    from prefmix.lineage.audit import diff, diff_versions

    store, ledger_url = _context(args)
    if len(args.names) == 3:
        return _report(args, diff_versions(store, *args.names, ledger_url=ledger_url), _print_version_diff)
    if len(args.names) != 2:
        raise UserError("lineage diff: expected NAME vA vB (a dataset's versions) or BATCH_A BATCH_B")
    return _report(args, diff(store, *args.names), _print_batch_diff)


def _print_version_diff(data: dict[str, Any]) -> None:
    print(f"{data['dataset']} v{data['a']} -> v{data['b']}: {len(data['added'])} added, {len(data['removed'])} removed")
    for label in ("added", "removed"):
        print(f"{label} by reason: " + (", ".join(f"{k} {v}" for k, v in data["reasons"][label].items()) or "none"))
        for r in data[label]:
            print(f"  {label[0]} {r['record_id']}  {r['source']:<9} {r['domain'] or '':<10} {r['reason']}")


def _print_batch_diff(data: dict[str, Any]) -> None:
    print(f"{data['a']} -> {data['b']}: {data['rows']['a']} -> {data['rows']['b']} rows ({data['rows']['kept']} kept)")
    for label in ("added", "removed"):
        print(f"rows {label}")
        for r in data[label] or [{"source": "-", "domain": "-", "rows": 0}]:
            print(f"  {r['source']:<10} {r['domain']:<12} {r['rows']}")
    print("config changes")
    for c in data["config_changes"]:
        print(f"  {c['key']}: {json.dumps(c['a'])} -> {json.dumps(c['b'])}")
    for label in ("inputs_added", "inputs_removed"):
        print(label.replace("_", " "))
        for i in data[label]:
            print(f"  {i['role']:<18} {i['path'] or i['run_id']} {(i['sha256'] or '')[:16]}")


def cmd_versions(args: argparse.Namespace) -> int:
    from prefmix.lineage.versions import listing

    store, ledger_url = _context(args)
    return _report(args, listing(store, args.dataset, ledger_url), _print_versions)


def _print_versions(rows: list[dict[str, Any]]) -> None:
    _table(["version", "latest", "day", "rows", "new deliveries", "batch", "status", "path"],
           [[f"v{r['version']}", "*" if r["latest"] else "", r["day"], r["rows"], r["deliveries"], r["batch_id"], r["status"],
             r["path"]] for r in rows])


def cmd_retract(args: argparse.Namespace) -> int:
    from prefmix.lineage.retract import record

    store, ledger_url = _context(args)
    chosen = _selector(args)
    if chosen is None:
        raise UserError("retract: expected exactly one selector: --delivery SHA256 | --annotator ID | --vendor NAME | --teacher NAME")
    from prefmix.lineage.ledger import Ledger
    from prefmix.lineage.retract import matches

    if not (args.reason or "").strip():
        raise UserError("retract needs --reason TEXT saying why the rows are retracted")
    store.require()
    if not matches(Ledger.for_reading(store, ledger_url), chosen[0], chosen[1]):  # type: ignore[arg-type]
        raise UserError(f"--{chosen[0]} {chosen[1]}: matches no row of any indexed version or batch; nothing retracted")
    dataset = args.dataset
    if args.rebuild and dataset is None:
        names = store.dataset_names()
        if len(names) != 1:
            raise UserError(f"retract --rebuild: name the dataset to rebuild with --dataset (datasets here: {', '.join(names) or 'none'})")
        dataset = names[0]
    with store.lock("prefmix retract"):
        from prefmix.lineage.publish import recover

        recover(store, ledger_url)
        retraction, rows = record(store, ledger_url, chosen[0], chosen[1], args.reason, dataset=args.dataset, by=args.by)  # type: ignore[arg-type]
        result: dict[str, Any] = {"retraction": retraction.model_dump(mode="json"), "rows_matched": rows}
        if args.rebuild:
            from prefmix.contract import PUBLISHED
            from prefmix.lineage.rebuild import rebuild

            manifest, path = rebuild(store, dataset, ledger_url)
            info = manifest.dataset
            result["rebuilt"] = {"dataset": dataset, "version": info.version if info and manifest.status in PUBLISHED else None,
                                 "batch_id": manifest.batch_id, "status": manifest.status, "path": str(path),
                                 "retracted_rows": info.retracted_rows if info else 0}
    return _report(args, result, _print_retraction)


def _print_retraction(result: dict[str, Any]) -> None:
    retraction = result["retraction"]
    print(f"retraction {retraction['retraction_id']}: --{retraction['kind']} {retraction['value']} ({result['rows_matched']} rows in indexed versions)")
    if "rebuilt" in result:
        r = result["rebuilt"]
        print(f"rebuilt {r['dataset']}: batch {r['batch_id']} {r['status']}" + (f" as v{r['version']}" if r["version"] else "")
              + f", {r['retracted_rows']} retracted rows left out")
    else:
        print("the next nightly run leaves these rows out (or rerun with --rebuild to publish a corrected version now)")


def cmd_verify(args: argparse.Namespace) -> int:
    from prefmix.lineage.audit import verify

    store, _ = _context(args)
    data = verify(store, args.batch)
    return _report(args, data, _print_verify, code=0 if data["ok"] else 1)


def _print_verify(data: dict[str, Any]) -> None:
    if data["ok"]:
        print(f"{data['batch_id']}: ok, {data['files']} files match the manifest")
    for p in data["problems"]:
        print(f"{data['batch_id']}: {p['path']}: {p['problem']}")


def cmd_reproduce(args: argparse.Namespace) -> int:
    from prefmix.lineage.audit import reproduce

    store, _ = _context(args)
    data = reproduce(store, args.batch, scratch=Path(args.scratch) if args.scratch else None)
    return _report(args, data, _print_reproduce, code=0 if data["same"] else 1)


def _print_reproduce(data: dict[str, Any]) -> None:
    if data["same"]:
        print(f"{data['batch_id']}: reproduced, content hash {data['content_hash']}")
        return
    print(f"{data['batch_id']}: DIFFERENT, content hash {data['content_hash']} != manifest {data['expected']}")
    print(f"  first difference: {json.dumps(data.get('first_difference'), default=str)}")


def cmd_reindex(args: argparse.Namespace) -> int:
    from prefmix.lineage.ledger import reindex

    store, ledger_url = _context(args)
    store.require()
    with store.lock("prefmix lineage reindex"):
        data = reindex(store, ledger_url)
    return _report(args, data, lambda d: print(f"ledger {d['ledger']}: {d['batches']} batches, {d['records']} records indexed in {d['seconds']} s"))
