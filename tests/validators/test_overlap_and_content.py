"""The prompt-overlap checks (near-duplicates with MinHash, eval-set contamination), the content checks'
edge cases (invalid UTF-8, a random-weight teacher's text, repetition) and their pre-flight errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prefmix.config import Config
from prefmix.errors import ConfigError
from prefmix.records import to_arrow
from prefmix.validators import minhash, ngrams, overlap
from prefmix.validators.earlier import rebuilt_sketch
from prefmix.validators.content import seq_rep
from prefmix.validators.gate import run_gate
from prefmix.validators.preflight import check as preflight
from tests.validators.batches import clean_frame, write_batch
from tests.validators.batches import gate_config as config


def failed(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.name for c in result.checks if not c.success]


def set_cell(frame: pl.DataFrame, row: int, column: str, value: object) -> pl.DataFrame:
    values = frame[column].to_list()
    values[row] = value
    return frame.with_columns(pl.Series(column, values, dtype=frame.schema[column]))


# -- MinHash ---------------------------------------------------------------------------------------------


def _signatures(texts: list[str], shingle: int = 1) -> np.ndarray:
    return minhash.signatures(ngrams.words(pl.Series(texts)), shingle)[1]


def test_signature_agreement_estimates_jaccard() -> None:
    rng = random.Random(1)
    vocab = [f"w{i}" for i in range(5000)]
    base = rng.sample(vocab, 200)
    for keep in (200, 150, 100, 50):  # shared words: Jaccard keep / (400 - keep)
        other = base[:keep] + rng.sample([v for v in vocab if v not in base], 200 - keep)
        sig = _signatures([" ".join(base), " ".join(other)])
        estimate = minhash.similarity(sig, np.array([[0, 1]]))[0]
        assert estimate == pytest.approx(keep / (400 - keep), abs=0.15), keep


def test_identical_word_sequences_share_a_key_and_a_signature() -> None:
    w = ngrams.words(pl.Series(["What is  a Bond?", "what is a bond?", "what is a bond ?"]))
    keys = ngrams.text_keys(w)
    assert keys[0] == keys[1] != keys[2]
    sig = _signatures(["What is  a Bond?", "what is a bond?"], shingle=3)
    assert (sig[0] == sig[1]).all()


def test_candidate_pairs_find_near_copies_and_not_strangers() -> None:
    rng = random.Random(2)
    vocab = [f"w{i}" for i in range(20000)]
    texts = [" ".join(rng.sample(vocab, 30)) for _ in range(2000)]
    texts.append(texts[10] + " extra")  # a near copy of text 10
    sig = _signatures(texts, shingle=3)
    pairs = minhash.candidate_pairs(sig)
    similar = pairs[minhash.similarity(sig, pairs) >= 0.7]
    assert similar.tolist() == [[10, 2000]]


# -- near-duplicates --------------------------------------------------------------------------------------


def test_near_duplicates_against_an_earlier_published_batch(tmp_path: Path) -> None:
    earlier = clean_frame(seed=1)
    published = write_batch(tmp_path, earlier, batch_id="b0", area="batches")
    run_gate(config(), published)  # its gate leaves report/prompt_sketch.parquet, as a nightly's would
    assert (published / "report" / "prompt_sketch.parquet").is_file()

    frame = clean_frame(seed=2)
    # Row 0 is a human row whose prompt is new, one word away from a published (human) prompt: flagged,
    # although no other source in this batch has it. Row 1 re-publishes a published row as it was: not flagged.
    frame = set_cell(frame, 0, "prompt", earlier["prompt"][5] + " today")
    frame = set_cell(frame, 1, "prompt", earlier["prompt"][6])
    result = run_gate(config(), write_batch(tmp_path, frame, batch_id="b1"))
    check = result.check("near_duplicates")
    assert check.observed["rows"] == 1 and check.observed["earlier_prompts"] == 160
    assert check.samples[0]["near"] == "(a prompt of an earlier published batch)"
    assert check.samples[0]["record_id"] == frame["record_id"][0]
    cfg = config()
    cfg.gate.near_duplicates.earlier_batches = False
    assert run_gate(cfg, write_batch(tmp_path, frame, batch_id="b1")).check("near_duplicates").observed["rows"] == 0


def test_an_earlier_batch_without_a_sketch_is_read_from_its_prompts(tmp_path: Path) -> None:
    earlier = clean_frame(seed=1)
    published = write_batch(tmp_path, earlier, batch_id="b0", area="batches")  # never gated here: no sketch
    frame = set_cell(clean_frame(seed=2), 0, "prompt", earlier["prompt"][5] + " today")
    result = run_gate(config(max_pii_share=0.01), write_batch(tmp_path, frame, batch_id="b1"))
    assert result.check("near_duplicates").observed["rows"] == 1
    # the rebuilt sketch is kept in the store's cache (the published folder is not rewritten) and read next time
    rebuilt = rebuilt_sketch(published)
    assert rebuilt.parent == tmp_path / "cache" / "prompt_sketches" and not (published / "report").exists()
    assert overlap.sketch_scheme(rebuilt) == overlap.scheme(config().gate)
    assert len(overlap.read_sketch(rebuilt)[0]) == earlier["prompt"].n_unique()
    for f in (published / "data").glob("*.parquet"):
        f.unlink()  # from now on only the kept sketch can tell the gate the earlier prompts
    again = run_gate(config(max_pii_share=0.01), write_batch(tmp_path, frame, batch_id="b2"))
    assert again.check("near_duplicates").observed["rows"] == 1


def test_same_source_near_copies_within_the_batch_are_not_flagged(tmp_path: Path) -> None:
    frame = clean_frame()
    frame = set_cell(frame, 1, "prompt", frame["prompt"][0] + " please")  # both human
    assert run_gate(config(), write_batch(tmp_path, frame)).check("near_duplicates").observed["rows"] == 0


# -- contamination ----------------------------------------------------------------------------------------


def test_contamination_with_a_parquet_eval_set(tmp_path: Path) -> None:
    frame = clean_frame()
    words = frame["prompt"][12].split()
    inside = "Please answer: " + " ".join(words[1:14]) + " and explain."  # 13 consecutive words of row 12
    short = frame["prompt"][20]  # a whole prompt of fewer than... (16 words) -- also a 13-gram
    eval_set = tmp_path / "eval.parquet"
    pl.DataFrame({"prompt": [inside, short, "what is the capital of a small country"], "id": [1, 2, 3]}).write_parquet(eval_set)
    result = run_gate(config(contamination={"eval_sets": [str(eval_set)]}), write_batch(tmp_path, frame))
    check = result.check("contamination")
    assert not check.success and check.observed["rows"] == 2 and check.observed["eval_sets"] == {"eval.parquet": 3}
    assert {s["record_id"] for s in check.samples} == {frame["record_id"][12], frame["record_id"][20]}


def test_a_short_eval_prompt_matches_only_whole(tmp_path: Path) -> None:
    frame = set_cell(clean_frame(), 4, "prompt", "What is APR?")
    eval_set = tmp_path / "eval.jsonl"
    eval_set.write_text(json.dumps({"prompt": "what is  APR?"}) + "\n" + json.dumps({"prompt": "What is"}) + "\n")
    check = run_gate(config(contamination={"eval_sets": [str(eval_set)]}), write_batch(tmp_path, frame)).check("contamination")
    assert check.observed["rows"] == 1


@pytest.mark.parametrize(
    "write, message",
    [
        (None, r"gate.contamination.eval_sets: .*missing.jsonl: file not found"),
        (lambda p: p.write_text('{"question": "x"}\n'), r"gate.contamination.eval_sets: .*: expected a text column 'prompt'"),
        (lambda p: p.write_text("{not json\n"), r"gate.contamination.eval_sets: .*: not readable as JSON Lines"),
    ],
)
def test_eval_set_mistakes_are_found_in_preflight(tmp_path: Path, write, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / ("missing.jsonl" if write is None else "eval.jsonl")
    if write is not None:
        write(path)
    cfg = Config()
    cfg.gate.contamination.eval_sets = [str(path)]
    with pytest.raises(ConfigError, match=message):
        preflight(cfg)


def test_refusal_patterns_are_checked_in_config_and_preflight() -> None:
    with pytest.raises(Exception, match="not a regular expression"):
        Config.model_validate({"gate": {"refusal": {"patterns": ["(unclosed"]}}})
    cfg = Config.model_validate({"gate": {"refusal": {"patterns": ["(?=lookahead)"]}}})  # Python takes it, Polars not
    with pytest.raises(ConfigError, match=r"gate.refusal.patterns: not accepted by the gate's regex engine"):
        preflight(cfg)


def test_user_refusal_patterns_extend_the_builtin_list(tmp_path: Path) -> None:
    frame = clean_frame()
    for row in range(0, 12):
        frame = set_cell(frame, row, "chosen", "Nein, das mache ich nicht.")
    batch = write_batch(tmp_path, frame)
    assert run_gate(config(), batch).check("refusal_share").success
    cfg = config()
    cfg.gate.refusal.patterns = [r"\bnein\b"]
    check = run_gate(cfg, batch).check("refusal_share")
    assert not check.success and check.observed["rows"] == 12


# -- content ----------------------------------------------------------------------------------------------


def test_invalid_utf8_such_as_lone_surrogates_is_a_text_integrity_failure(tmp_path: Path) -> None:
    table = to_arrow(clean_frame())
    chosen = table.column("chosen").combine_chunks()
    values = [v.encode() for v in chosen.to_pylist()]
    values[7] = b"Good answer \xed\xa0\x80 with a lone surrogate."  # CESU-8 / WTF-8 bytes: not UTF-8
    offsets = np.concatenate([[0], np.cumsum([len(v) for v in values])]).astype(np.int32)
    broken = pa.Array.from_buffers(pa.string(), len(values), [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(values))])
    table = table.set_column(table.schema.get_field_index("chosen"), table.schema.field("chosen"), broken)
    batch_dir = write_batch(tmp_path, clean_frame())
    pq.write_table(table, batch_dir / "data" / "part-00000.parquet")
    result = run_gate(config(), batch_dir)
    assert failed(result) == ["text_integrity"] and result.verdict == "fail"
    observed = result.check("text_integrity").observed
    assert observed["invalid_utf8_rows"] == 1 and observed["chosen_rows"] == 1
    assert "\\ufffd" in result.check("text_integrity").samples[0]["chosen"]


def test_a_random_weight_teachers_text_is_quarantined_naming_text_integrity(tmp_path: Path) -> None:
    rng = random.Random(0)
    frame = clean_frame()
    noise = [bytes(rng.randrange(256) for _ in range(120)).decode("utf-8", "replace") for _ in range(frame.height)]
    synthetic = (frame["source"] == "synthetic").to_list()
    chosen = [n if s else c for n, s, c in zip(noise, synthetic, frame["chosen"].to_list())]
    result = run_gate(config(), write_batch(tmp_path, frame.with_columns(pl.Series("chosen", chosen))))
    assert result.verdict == "fail" and "text_integrity" in result.failed_critical


def test_seq_rep_is_the_share_of_repeated_word_ngrams() -> None:
    texts = pl.Series(["a b c d e f g h i j", "go on " * 10, "one two three", "A b c d A b c d A b c d"])
    rep = seq_rep(texts, 4).to_list()
    assert rep[0] == 0.0 and rep[1] == pytest.approx(1 - 2 / 17) and rep[2] == 0.0
    assert rep[3] == pytest.approx(1 - 4 / 9)  # case and spacing do not make a loop new


def test_checks_turned_off_are_not_measured(tmp_path: Path) -> None:
    off = {name: "off" for name in ("near_duplicates", "contamination", "repetition", "echo")}
    result = run_gate(config(severity=off), write_batch(tmp_path, clean_frame()))
    assert not set(off) & {c.name for c in result.checks}
    assert not (tmp_path / "staging" / "b1" / "report" / "prompt_sketch.parquet").exists()
