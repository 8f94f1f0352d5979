"""Seeded, realistic vendor shards for the demo and tests.

Three shards across general, finance, medicine and law:
  - pairs (canonical column names, vendor "acme-labels"),
  - rankings (4 responses, 3 rankings per item, vendor "rankwise"),
  - judgments (vendor "expertpanel" with its own column names and A/B/Tie
    labels): 8 annotators, gold items judged by everyone, a second review pass
    on split items, adjudication of items still split, and ONE weak annotator
    (w08) who answers close to chance and fails the gold items.
Chosen responses are specific and hedged where the domain needs it; rejected
ones are vague or overconfident. The texts they are made of are in sample_texts.yaml.

`SAMPLE_AGGREGATION` is the policy the demo uses with these shards.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa

from prefmix.config import Aggregation, HumanShard
from prefmix.store import write_parquet
from prefmix.yamlio import read_yaml

SAMPLE_AGGREGATION = Aggregation(min_annotators=3, min_agreement=0.6, min_gold_accuracy=0.7, ranking_pairs="best_worst")  # as configs/demo.yaml
ANNOTATORS = [f"w{i:02d}" for i in range(1, 9)]
WEAK = "w08"
JUDGMENT_COLUMNS = {
    "item_id": "task_id",
    "prompt": "instruction",
    "domain": "category",
    "response_a": "output_1",
    "response_b": "output_2",
    "annotator_id": "worker_id",
    "preference": "choice",
    "confidence": "confidence",
    "review_pass": "qa_round",
    "is_gold": "honeypot",
    "gold_answer": "honeypot_answer",
    "adjudicated_label": "final_label",
}

_TEXTS = read_yaml(Path(__file__).with_name("sample_texts.yaml"), "sample annotation texts")
TOPICS: dict[str, list[tuple[str, list[str]]]] = {domain: list(topics.items()) for domain, topics in _TEXTS["topics"].items()}
PROMPTS: list[str] = _TEXTS["prompts"]
PERSONAS: list[str] = _TEXTS["personas"]
OPENERS: list[str] = _TEXTS["openers"]
HEDGES: dict[str, str] = _TEXTS["hedges"]
VAGUE: list[str] = _TEXTS["vague"]
OVERCONFIDENT: dict[str, str] = _TEXTS["overconfident"]
DOMAINS = list(TOPICS)


def _item(rng: random.Random, index: int) -> tuple[str, str, str, str, str]:
    """(domain, prompt, good, okay, bad) for one item."""
    domain = DOMAINS[index % len(DOMAINS)]
    topic, facts = rng.choice(TOPICS[domain])
    prompt = rng.choice(PROMPTS).format(t=topic, p=rng.choice(PERSONAS))
    picked = rng.sample(facts, 3)
    good = " ".join([rng.choice(OPENERS), *picked, HEDGES[domain]])
    okay = " ".join([rng.choice(facts), rng.choice(VAGUE).format(t=topic)])
    bad = " ".join(rng.sample([v.format(t=topic) for v in VAGUE], 2) + ([OVERCONFIDENT[domain]] if rng.random() < 0.4 else []))
    return domain, prompt, good, okay, bad


def _pairs(rng: random.Random, n: int) -> pa.Table:
    rows = []
    for i in range(n):
        domain, prompt, good, okay, bad = _item(rng, i)
        k = rng.choice([1, 2, 3, 3, 3, 4, 5])
        ids = rng.sample(ANNOTATORS[:7], k)
        agreement = 1.0 if k == 1 else rng.choice([1.0, 1.0, 0.8, 0.67, 0.6] + ([0.4] if k >= 3 else []))
        rows.append({
            "pair_id": f"acme-{i:05d}", "prompt": prompt, "chosen": good, "rejected": bad if rng.random() < 0.7 else okay,
            "domain": domain, "annotator_ids": ids, "agreement": agreement, "review_passes": rng.choice([1, 1, 2]),
        })
    return pa.Table.from_pylist(rows)


def _rankings(rng: random.Random, n: int) -> pa.Table:
    rows = []
    for i in range(n):
        domain, prompt, good, okay, bad = _item(rng, i)
        _, _, _, okay2, bad2 = _item(rng, i)
        quality = [good, okay, okay2, bad]  # true order, best first
        order = list(range(4))
        rng.shuffle(order)  # responses appear in random order in the export
        responses = [quality[j] for j in order]
        rank_of_truth = sorted(range(4), key=lambda pos: order[pos])  # indices into responses, best first
        rankings = []
        for _ in range(3):
            ranking = list(rank_of_truth)
            if rng.random() < 0.35:  # annotators sometimes swap two neighbours
                s = rng.randrange(3)
                ranking[s], ranking[s + 1] = ranking[s + 1], ranking[s]
            rankings.append(ranking)
        rows.append({
            "item_id": f"rw-{i:05d}", "prompt": prompt, "domain": domain, "responses": responses,
            "rankings": rankings, "annotator_ids": rng.sample(ANNOTATORS[:7], 3),
        })
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("item_id", pa.string()), ("prompt", pa.string()), ("domain", pa.string()), ("responses", pa.list_(pa.string())),
        ("rankings", pa.list_(pa.list_(pa.int32()))), ("annotator_ids", pa.list_(pa.string())),
    ]))


def _vote(rng: random.Random, truth: str, accuracy: float, hard: bool) -> str:
    if hard:
        return rng.choice(["a", "b", "tie"])
    if rng.random() < accuracy:
        return truth
    return rng.choice(["tie", "b" if truth == "a" else "a", "b" if truth == "a" else "a"])


def _judgments(rng: random.Random, n: int) -> pa.Table:
    rows: list[dict[str, object]] = []
    accuracy = {a: 0.9 for a in ANNOTATORS} | {"w03": 0.8, "w06": 0.85, WEAK: 0.4}
    label = {"a": "A", "b": "B", "tie": "Tie"}
    for i in range(n):
        domain, prompt, good, okay, bad = _item(rng, i)
        gold = rng.random() < 0.1  # calibration items, judged by the whole panel
        hard = not gold and rng.random() < 0.08  # close calls where experts genuinely split
        worse = okay if hard else bad
        truth = rng.choice(["a", "b"])
        a, b = (good, worse) if truth == "a" else (worse, good)
        who = ANNOTATORS if gold else rng.sample(ANNOTATORS, rng.choice([3, 4, 4, 5]))
        base = {"task_id": f"ep-{i:05d}", "instruction": prompt, "category": domain, "output_1": a, "output_2": b,
                "honeypot": gold, "honeypot_answer": label[truth] if gold else None, "final_label": None}
        # gold items are clear-cut on purpose: careful annotators nearly always get them right
        votes = {w: _vote(rng, truth, accuracy[w] if w == WEAK or not gold else 0.97, hard) for w in who}
        for w, v in votes.items():
            rows.append(base | {"worker_id": w, "choice": label[v], "confidence": round(rng.uniform(0.5, 1.0), 2), "qa_round": 1})
        if gold:
            continue
        top = max(votes.values(), key=list(votes.values()).count)
        split = len(set(votes.values())) > 1
        if split and rng.random() < 0.6:  # QA round: dissenters look again and often correct themselves
            for w, v in votes.items():
                if v != top and w != WEAK:
                    votes[w] = truth if rng.random() < 0.7 else v
                    rows.append(base | {"worker_id": w, "choice": label[votes[w]], "confidence": round(rng.uniform(0.6, 1.0), 2), "qa_round": 2})
        values = list(votes.values())
        if values.count("a") == values.count("b") or hard and rng.random() < 0.5:
            # an adjudicator settles items the panel could not; the label rides on the item's last row
            rows[-1] = rows[-1] | {"final_label": label[truth] if not hard or rng.random() < 0.7 else "Tie"}
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("task_id", pa.string()), ("instruction", pa.string()), ("category", pa.string()), ("output_1", pa.string()),
        ("output_2", pa.string()), ("worker_id", pa.string()), ("choice", pa.string()), ("confidence", pa.float64()),
        ("qa_round", pa.int32()), ("honeypot", pa.bool_()), ("honeypot_answer", pa.string()), ("final_label", pa.string()),
    ]))


def write_sample_shards(out_dir: Path, seed: int = 0, n_items: int = 300) -> list[HumanShard]:
    """Write the three sample shards (n_items items each) and return their config entries."""
    out_dir = Path(out_dir)
    rng = random.Random(seed)
    pairs = write_parquet(_pairs(rng, n_items), out_dir / "acme_pairs.parquet")
    rankings = write_parquet(_rankings(rng, n_items), out_dir / "rankwise_rankings.parquet")
    judgments = write_parquet(_judgments(rng, n_items), out_dir / "expertpanel_judgments.parquet")
    return [
        HumanShard(path=str(pairs), layout="pairs", vendor="acme-labels", columns={"item_id": "pair_id"}),
        HumanShard(path=str(rankings), layout="rankings", vendor="rankwise"),
        HumanShard(path=str(judgments), layout="judgments", vendor="expertpanel", columns=dict(JUDGMENT_COLUMNS)),
    ]
