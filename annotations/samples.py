"""Seeded, realistic vendor shards for the demo and tests.

Three shards across general, finance, medicine and law:
  - pairs (canonical column names, vendor "acme-labels"),
  - rankings (4 responses, 3 rankings per item, vendor "rankwise"),
  - judgments (vendor "expertpanel" with its own column names and A/B/Tie
    labels): 8 annotators, gold items judged by everyone, a second review pass
    on split items, adjudication of items still split, and ONE weak annotator
    (w08) who answers close to chance and fails the gold items.
Chosen responses are specific and hedged where the domain needs it; rejected
ones are vague or overconfident.

`SAMPLE_AGGREGATION` is the policy the demo uses with these shards.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa

from prefmix.config import Aggregation, HumanShard
from prefmix.store import write_parquet

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

TOPICS: dict[str, list[tuple[str, list[str]]]] = {
    "general": [
        ("keep houseplants alive through the winter", ["Move them away from cold windows and hot radiators.", "Water less often, because growth slows when days are short.", "Wipe dust off the leaves so they catch more of the weak light.", "Group plants together to raise the humidity around them."]),
        ("prepare for a job interview", ["Read the job description and match two stories from your work to each key requirement.", "Research the team's recent projects so you can ask specific questions.", "Practise answers out loud, keeping each one under two minutes.", "Prepare a short list of questions about how success is measured in the role."]),
        ("learn a new language as an adult", ["Study fifteen minutes every day rather than two hours once a week.", "Use spaced-repetition flashcards for the thousand most common words.", "Speak with a tutor or exchange partner from the first month.", "Listen to slow podcasts and repeat sentences aloud to train pronunciation."]),
        ("reduce food waste at home", ["Plan meals for the week and shop from a list.", "Store leftovers in clear containers at eye level so they get eaten.", "Freeze bread, ripe bananas and cooked grains before they spoil.", "Learn the difference between a best-before date and a use-by date."]),
        ("sleep better on work nights", ["Keep the same wake-up time every day, weekends included.", "Stop caffeine after early afternoon, since it lingers for hours.", "Keep the bedroom cool, dark and quiet.", "Put screens away thirty minutes before bed and read instead."]),
    ],
    "finance": [
        ("build an emergency fund", ["Aim first for one month of essential expenses, then grow it to three to six months.", "Keep it in a separate high-yield savings account so it is not spent by accident.", "Automate a fixed transfer on payday, even a small one.", "Refill the fund before resuming other goals after you use it."]),
        ("pay down credit card debt", ["List every card with its balance and interest rate.", "Pay the minimum on all cards and put every extra dollar on the highest-rate card first.", "Ask the issuer for a lower rate; a short phone call sometimes works.", "Consider a balance transfer only if the fee and the promotional period actually save money."]),
        ("choose between a Roth IRA and a traditional IRA", ["A Roth is funded with after-tax money and qualified withdrawals are tax-free.", "A traditional IRA may give a deduction now, and withdrawals are taxed later.", "If you expect a higher tax rate in retirement, the Roth often comes out ahead.", "Income limits can restrict direct Roth contributions, so check the current thresholds."]),
        ("understand an index fund expense ratio", ["The expense ratio is the yearly fee as a share of your investment.", "A 0.05% ratio costs 5 dollars a year per 10,000 dollars invested.", "Small differences compound over decades, so lower fees usually win for the same index.", "Compare funds that track the same index before comparing fees."]),
        ("budget on an irregular income", ["Base the budget on your lowest typical month, not the average.", "Park income in a holding account and pay yourself a fixed salary from it.", "Set aside a share of every payment for taxes if you are self-employed.", "Build a larger buffer than a salaried worker would."]),
    ],
    "medicine": [
        ("manage mild seasonal allergies", ["Non-drowsy antihistamines such as loratadine or cetirizine help many people.", "A steroid nasal spray works best when used daily through the season.", "Keep windows closed on high-pollen days and shower after being outdoors.", "Saline rinses can clear pollen from the nose."]),
        ("lower blood pressure through lifestyle changes", ["Cut back on salt; processed foods are the main source.", "Aim for about 150 minutes of moderate activity a week.", "Limit alcohol and stop smoking.", "Measure at home at the same time each day and share the readings with your doctor."]),
        ("recognise the signs of dehydration", ["Early signs include thirst, dark yellow urine and a dry mouth.", "Dizziness, headache and tiredness often follow.", "Confusion, a racing heart or no urine for many hours need urgent care.", "Older adults and young children can become dehydrated faster."]),
        ("care for a minor burn", ["Cool the burn under cool running water for about twenty minutes.", "Do not use ice, butter or toothpaste.", "Cover it loosely with a clean non-stick dressing.", "Seek care if the burn is larger than your palm, on the face or hands, or blistering badly."]),
        ("prepare for a routine blood test", ["Ask whether you need to fast; lipid and glucose tests often require eight to twelve hours.", "Drink water beforehand unless told otherwise, since it makes the draw easier.", "Tell the staff about medicines and supplements you take.", "Wear a top with sleeves that roll up easily."]),
    ],
    "law": [
        ("get a security deposit back from a landlord", ["Document the unit's condition with dated photos at move-in and move-out.", "Many places set a deadline for the landlord to return the deposit or itemise deductions.", "Send a written demand letter that cites the deadline and keep a copy.", "Small claims court is an option if the landlord does not respond."]),
        ("understand a non-compete clause", ["It limits working for competitors for a period after you leave.", "Enforceability depends heavily on the jurisdiction; some places ban most non-competes.", "Courts look at whether the duration, geography and scope are reasonable.", "Have an employment lawyer review it before signing if it affects your career."]),
        ("write a simple will", ["Name an executor and list who receives which assets.", "Name a guardian for minor children if you have any.", "Follow your jurisdiction's signing and witness rules or the will may be invalid.", "Review it after major life events such as marriage or a birth."]),
        ("return a faulty product", ["Keep the receipt and describe the fault in writing.", "Consumer law in many places gives remedies beyond the store's own policy.", "Ask for a repair, replacement or refund, and note the date of each contact.", "If the seller refuses, a consumer protection agency can advise you."]),
        ("register a small business name", ["Check that the name is not already registered or trademarked.", "Register it with the business registry of your state or country.", "A trade name registration is not the same as a trademark.", "Keep the registration current, since some expire if not renewed."]),
    ],
}
PROMPTS = [
    "How do I {t}?",
    "What is the best way to {t}?",
    "Can you explain how to {t}? I'm a complete beginner.",
    "{p} How should I {t}?",
    "Give me practical advice on how to {t}.",
    "{p} What should I know to {t}?",
]
PERSONAS = [
    "I'm a student on a tight schedule.",
    "I work night shifts.",
    "I just moved to a new city.",
    "I'm in my fifties and new to this.",
    "I have two small kids at home.",
    "English is my second language, so keep it simple.",
]
OPENERS = ["Here is a practical approach.", "A few concrete steps help.", "Start with the basics.", "Good question; here is what usually works."]
HEDGES = {
    "general": "Adjust the details to your own situation.",
    "finance": "Tax rules and rates change, so check current figures before acting.",
    "medicine": "This is general information; see a clinician if symptoms persist or worsen.",
    "law": "Rules differ by jurisdiction, so check local law or ask a lawyer about your case.",
}
VAGUE = [
    "It depends on your situation.",
    "Just search online, there is plenty of information out there.",
    "Most people figure it out eventually.",
    "I wouldn't worry too much about it.",
    "There are many ways to {t}, and they all work.",
    "You should {t} carefully.",
]
OVERCONFIDENT = {
    "general": "Honestly, any method is fine.",
    "finance": "Just put everything into a single hot stock and you will be fine.",
    "medicine": "You don't need to see a doctor for this, ever.",
    "law": "You don't need to read the contract, these clauses are never enforced.",
}
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
