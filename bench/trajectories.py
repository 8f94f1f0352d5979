"""Benchmark: derive trajectory pairs and step pairs from 100k agent runs of 20 steps, against a plain-Python loop.

    .venv/bin/python bench/trajectories.py [--trajectories 100000] [--runs-per-task 8] [--modes trajectory step] [--data DIR]

1. Writes (seeded) a chat-JSONL delivery: tasks with --runs-per-task runs each; a run is a system
   and a user step, then 18 agent steps that each call a tool and get its result. The runs of a task
   share a random number of leading agent steps of the task's trunk, then go their own way
   (so step pairs have real divergence points); ~35% resolve; ~5% ran under another harness version.
2. For each mode, in its own child process on the same file, side by side:
   (a) prefmix: readers.read_trajectories (Polars NDJSON read, validation) + derive.derive;
   (b) a plain-Python loop over the same JSONL doing the same work: json.loads per line, the same
       validation rules, grouping, outcome comparison, divergence, checks, seeded cap, rendering,
       record ids. Both must produce the same set of record ids (checked: same_rows).
   The parent samples each child's RSS every 20 ms (peak_rss_mb); the child reports its own wall and
   CPU seconds for the work (imports excluded) and ru_maxrss.
The last line is JSON: per mode, trajectories/s and rows/s of both, speedup (loop seconds / prefmix
seconds, > 1 means prefmix is faster) and memory_ratio (prefmix peak RSS / loop peak RSS).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# this file is named like the room it measures: keep bench/ off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

AGENT_STEPS = 18
TOOLS = [{"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {"arg": {"type": "string"}}}}}
         for n in ("bash", "read_file", "edit_file")]
WORDS = ("the", "count", "widget", "loop", "index", "test", "fails", "off", "by", "one", "file", "value", "range",
         "check", "patch", "line", "return", "error", "list", "call", "module", "fix", "start", "end")


# -- data ------------------------------------------------------------------------------------------------


def _phrase(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _agent_step(rng: random.Random) -> tuple[str, str, str, str]:
    tool = rng.choice(TOOLS)["function"]["name"]
    return (_phrase(rng, 8).capitalize() + ".", tool, json.dumps({"arg": f"src/{rng.choice(WORDS)}_{rng.randrange(100)}.py"}),
            _phrase(rng, 10) + f" ({rng.randrange(1000)})")


def make_delivery(path: Path, trajectories: int, runs_per_task: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        for run in range(trajectories):
            task, r = divmod(run, runs_per_task)
            if r == 0:
                trunk = [_agent_step(rng) for _ in range(AGENT_STEPS)]
            shared = rng.randrange(AGENT_STEPS)
            steps = trunk[:shared] + [_agent_step(rng) for _ in range(AGENT_STEPS - shared)]
            messages: list[dict[str, Any]] = [
                {"role": "system", "content": "You are a software agent. Use the tools to fix the issue."},
                {"role": "user", "content": f"Issue {task}: {_phrase(random.Random(task), 12)}."},
            ]
            for j, (text, tool, arguments, output) in enumerate(steps):
                call = f"call_{r}_{j}"
                messages.append({"role": "assistant", "content": text,
                                 "tool_calls": [{"id": call, "type": "function", "function": {"name": tool, "arguments": arguments}}]})
                messages.append({"role": "tool", "tool_call_id": call, "content": output})
            line = {
                "trajectory_id": f"t{task:06d}-r{r}", "instance_id": f"task-{task:06d}", "repo": "acme/widgets",
                "base_commit": "abc123", "image": "swe-env:1", "harness": "openhands",
                "harness_version": "1.0" if rng.random() < 0.95 else "1.1", "model_name": "policy-a",
                "tools": TOOLS, "messages": messages, "resolved": rng.random() < 0.35,
            }
            out.write(json.dumps(line) + "\n")
    return path


# -- the plain-Python loop ---------------------------------------------------------------------------------

MASK = (1 << 64) - 1
ROLES = {"system": "system", "user": "user", "agent": "assistant"}
SOURCES = {"system": "system", "user": "user", "assistant": "agent"}


def _mix64(z: int) -> int:
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & MASK
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _bits(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def _norm(text: str | None) -> str:
    return " ".join(unicodedata.normalize("NFC", text or "").split())


def _record_id(prompt: str, chosen: str, rejected: str) -> str:
    return hashlib.sha256("\x1f".join(_norm(t) for t in (prompt, chosen, rejected)).encode("utf-8")).hexdigest()


def _render(messages: list[dict[str, Any]]) -> str:
    parts = []
    for m in messages:
        calls = "".join(f"\n<call {c['name'] or ''}>{c['arguments'] or ''}" for c in m.get("tool_calls") or [])
        parts.append(f"<{m['role']}>\n{m.get('content') or ''}{calls}")
    return "\n".join(parts)


def _read_loop(path: Path) -> list[dict[str, Any]]:
    runs = []
    with open(path, encoding="utf-8") as handle:
        for row, line in enumerate(l for l in handle if l.strip()):
            d = json.loads(line)
            tid = d.get("trajectory_id") or d.get("traj_id")
            label = tid or f"row {row}"
            steps: list[dict[str, Any]] = []
            for n, m in enumerate(d.get("messages") or d.get("trajectory") or []):
                role = m.get("role")
                if role not in ("system", "user", "assistant", "tool"):
                    raise ValueError(f"{path}: trajectory {label}: message {n + 1}: role {role!r}")
                if role == "tool":
                    if not steps:
                        raise ValueError(f"{path}: trajectory {label}: message {n + 1}: a tool result before any assistant message")
                    steps[-1]["observations"].append({"tool_call_id": m.get("tool_call_id"), "content": m.get("content")})
                    continue
                calls = [{"id": c.get("id"), "name": (c.get("function") or {}).get("name"), "arguments": (c.get("function") or {}).get("arguments")}
                         for c in m.get("tool_calls") or []]
                steps.append({"idx": len(steps) + 1, "source": SOURCES[role], "content": m.get("content"), "tool_calls": calls, "observations": []})
            task = d.get("task_id") or d.get("instance_id")
            if not task or not steps:
                raise ValueError(f"{path}: trajectory {label}: no task id or no steps")
            seen: dict[str, int] = {}
            for step in steps:
                if step["tool_calls"] and step["source"] != "agent":
                    raise ValueError(f"{path}: trajectory {label}: step {step['idx']}: tool calls on a {step['source']} step")
                for c in step["tool_calls"]:
                    if not c["id"] or not c["name"] or c["id"] in seen:
                        raise ValueError(f"{path}: trajectory {label}: step {step['idx']}: bad or repeated call id")
                    seen[c["id"]] = step["idx"]
            answered = set()
            for step in steps:
                for o in step["observations"]:
                    if seen.get(o["tool_call_id"]) != step["idx"] or o["tool_call_id"] in answered:
                        raise ValueError(f"{path}: trajectory {label}: step {step['idx']}: orphan or repeated observation")
                    answered.add(o["tool_call_id"])
            env = {"repo_or_site": d.get("repo"), "base_commit_or_snapshot": d.get("base_commit"), "image": d.get("image"),
                   "harness": d.get("harness"), "harness_version": d.get("harness_version")}
            resolved = d.get("resolved")
            reward = d.get("reward")
            runs.append({
                "id": tid, "task": task, "group": (task, json.dumps(env, separators=(",", ":")), None), "steps": steps,
                "resolved": None if resolved is None else int(resolved), "reward": reward,
                "value": reward if reward is not None else (None if resolved is None else float(resolved)),
                "tools": None if d.get("tools") is None else json.dumps(d["tools"]), "row": row,
            })
    return runs


def _step_key(step: dict[str, Any]) -> tuple[Any, ...]:
    return (step["source"], _action_key(step), tuple(_norm(o["content"]) for o in step["observations"]))


def _action_key(step: dict[str, Any]) -> tuple[Any, ...]:
    return (_norm(step["content"]), tuple((c["name"] or "", _norm(c["arguments"])) for c in step["tool_calls"]))


def _messages(step: dict[str, Any], results: bool = True) -> list[dict[str, Any]]:
    own = {"role": ROLES[step["source"]], "content": step["content"], "tool_calls": step["tool_calls"] or None, "tool_call_id": None}
    tool = [{"role": "tool", "content": o["content"], "tool_calls": None, "tool_call_id": o["tool_call_id"]} for o in step["observations"]]
    return [own] + (tool if results else [])


def _beats(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["resolved"] is not None and b["resolved"] is not None and a["resolved"] > b["resolved"]:
        return True
    same = a["resolved"] == b["resolved"]
    return same and a["reward"] is not None and b["reward"] is not None and a["reward"] > b["reward"]


def loop_derive(path: Path, mode: str, seed: int = 0, cap: int = 4) -> tuple[int, list[str]]:
    """(trajectories in, record ids of the rows) by the same rules as prefmix, written as loops over dicts."""
    runs = _read_loop(path)
    salt = _mix64(seed & MASK)
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        agents = [i for i, s in enumerate(run["steps"]) if s["source"] == "agent"]
        if agents and run["value"] is not None:
            run["first"], run["last"] = agents[0], agents[-1]
            run["keys"] = [_step_key(s) for s in run["steps"]]
            groups[run["group"]].append(run)
    rows: list[tuple[int, str]] = []
    for members in groups.values():
        candidates = []
        for a in members:
            for b in members:
                if a is b or not _beats(a, b):
                    continue
                order = _mix64(_mix64(_bits(a["id"]) ^ salt) ^ _bits(b["id"]))
                made = _trajectory_pair(a, b) if mode == "trajectory" else _step_pair(a, b)
                if made is not None:
                    candidates.append((order, made))
        candidates.sort(key=lambda c: c[0])
        seen_keys, kept = set(), 0
        for order, (key, build) in candidates:
            if key in seen_keys:
                continue
            seen_keys.add(key)
            kept += 1
            if kept > cap:
                break
            rows.append((order, build()))
    rows.sort()
    ids, seen_ids = [], set()
    for _, rid in rows:
        if rid not in seen_ids:
            seen_ids.add(rid)
            ids.append(rid)
    return len(runs), ids


def _trajectory_pair(a: dict[str, Any], b: dict[str, Any]):
    prompt_a, prompt_b = a["keys"][: a["first"]], b["keys"][: b["first"]]
    if prompt_a != prompt_b or a["tools"] != b["tools"]:
        return None
    comp = lambda r: tuple(r["keys"][r["first"]: r["last"]]) + (_action_key(r["steps"][r["last"]]),)  # noqa: E731
    ca, cb = comp(a), comp(b)
    if ca == cb:
        return None

    def build() -> str:
        context = [m for s in a["steps"][: a["first"]] for m in _messages(s)]
        side = lambda r: [m for i, s in enumerate(r["steps"][r["first"]: r["last"] + 1], r["first"]) for m in _messages(s, i != r["last"])]  # noqa: E731
        return _record_id(_render(context), _render(side(a)), _render(side(b)))

    return (a["group"], tuple(prompt_a), ca, cb), build


def _step_pair(a: dict[str, Any], b: dict[str, Any]):
    n = min(len(a["keys"]), len(b["keys"]))
    k = next((i for i in range(n) if a["keys"][i] != b["keys"][i]), n)
    if k >= len(a["keys"]) or k >= len(b["keys"]):
        return None
    sa, sb = a["steps"][k], b["steps"][k]
    if sa["source"] != "agent" or sb["source"] != "agent" or _action_key(sa) == _action_key(sb) or a["tools"] != b["tools"]:
        return None

    def build() -> str:
        context = [m for s in a["steps"][:k] for m in _messages(s)]
        return _record_id(_render(context), _render(_messages(sa, False)), _render(_messages(sb, False)))

    return (a["group"], k, tuple(a["keys"][:k]), _action_key(sa), _action_key(sb)), build


# -- children and the parent -------------------------------------------------------------------------------


def child(kind: str, mode: str, path: Path) -> dict[str, Any]:
    if kind == "prefmix":
        from prefmix.trajectories.derive import derive
        from prefmix.trajectories.readers import read_trajectories

        wall, cpu = time.perf_counter(), time.process_time()
        frame, _ = read_trajectories([path])
        read_s = time.perf_counter() - wall
        result = derive(frame, mode)  # type: ignore[arg-type]
        n_in, ids = frame.height, result.rows.get_column("record_id").to_list()
        extra = {"read_s": round(read_s, 3), "derive_s": round(time.perf_counter() - wall - read_s, 3),
                 "rejected_by_reason": result.summary.rejected_by_reason, "reconciled": result.summary.reconciled}
    else:
        wall, cpu = time.perf_counter(), time.process_time()
        n_in, ids = loop_derive(path, mode)
        extra = {}
    seconds, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "seconds": round(seconds, 3), "cpu_s": round(cpu_s, 3), "trajectories": n_in, "rows": len(ids),
        "ids_sha256": hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest(),
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), **extra,
    }


def _measure(kind: str, mode: str, path: Path) -> dict[str, Any]:
    import psutil

    proc = subprocess.Popen([sys.executable, __file__, "--child", kind, mode, str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    peak, watched = 0, psutil.Process(proc.pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed (exit {proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = round(peak / 2**20, 1)
    result["trajectories_per_s"] = round(result["trajectories"] / result["seconds"], 1)
    result["rows_per_s"] = round(result["rows"] / result["seconds"], 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=100_000)
    parser.add_argument("--runs-per-task", type=int, default=8)
    parser.add_argument("--modes", nargs="+", choices=("trajectory", "step"), default=["trajectory", "step"])
    parser.add_argument("--data", type=Path, help="folder for the generated JSONL (kept; reused when present)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], Path(args.child[2]))))
        return
    folder = args.data or Path(tempfile.mkdtemp(prefix="bench-trajectories-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"runs-{args.trajectories}-{args.runs_per_task}.jsonl"
    if not path.exists():
        started = time.perf_counter()
        make_delivery(path, args.trajectories, args.runs_per_task)
        print(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    report: dict[str, Any] = {"trajectories": args.trajectories, "steps_per_trajectory": 2 + AGENT_STEPS,
                              "runs_per_task": args.runs_per_task, "jsonl_mib": round(path.stat().st_size / 2**20, 1), "modes": {}}
    for mode in args.modes:
        ours, loop = _measure("prefmix", mode, path), _measure("python_loop", mode, path)
        entry = {
            "prefmix": ours, "python_loop": loop,
            "speedup": round(loop["seconds"] / ours["seconds"], 2),
            "speedup_cpu": round(loop["cpu_s"] / ours["cpu_s"], 2),
            "memory_ratio": round(ours["peak_rss_mb"] / loop["peak_rss_mb"], 2),
            "same_rows": ours["ids_sha256"] == loop["ids_sha256"] and ours["rows"] == loop["rows"],
        }
        report["modes"][mode] = entry
        print(f"{mode}: prefmix {ours['seconds']:.1f}s ({ours['trajectories_per_s']:,.0f} traj/s, {ours['rows']:,} rows, "
              f"peak {ours['peak_rss_mb']:,.0f} MiB) vs loop {loop['seconds']:.1f}s ({loop['trajectories_per_s']:,.0f} traj/s, "
              f"peak {loop['peak_rss_mb']:,.0f} MiB): {entry['speedup']}x faster, memory x{entry['memory_ratio']}, "
              f"same rows: {entry['same_rows']}", file=sys.stderr)
    report.update({f"speedup_{m}": e["speedup"] for m, e in report["modes"].items()})
    report.update({f"memory_ratio_{m}": e["memory_ratio"] for m, e in report["modes"].items()})
    print(json.dumps(report))


if __name__ == "__main__":
    main()
