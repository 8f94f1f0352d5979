"""The compiled passes (validators/kernels.py) against plain definitions: words as Python splits them, and
MinHash signatures as numpy builds them from every shingle (`np.minimum.at`, a whole-table densify sweep)."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from prefmix.validators import kernels, minhash, ngrams

SEPARATORS = (" ", "  ", "\n", "\t", "\r\n", "\u00a0", " \u00a0 ")
WORDS = ("What", "is", "a", "bond?", "Zürich", "ÉCOLE", "x", "İstanbul", "ß", "naïve", "日本語", "3.5", "A-B")


def _texts(seed: int, n: int) -> list[str | None]:
    rng = random.Random(seed)
    out: list[str | None] = [None, "", " ", "\n\t", "one", "\u00a0lead", "trail\u00a0"]
    for _ in range(n):
        parts = [rng.choice(SEPARATORS) if rng.random() < 0.2 else ""]
        for _ in range(rng.randint(0, 12)):
            parts += [rng.choice(WORDS), rng.choice(SEPARATORS)]
        out.append("".join(parts[:-1] if rng.random() < 0.5 else parts))
    return out


def _split(text: str | None) -> list[str]:
    """The definition: lowercase (Unicode), newline/tab/CR/U+00A0 as space, split on spaces, no empty words."""
    lowered = (text or "").lower()
    for c in "\n\t\r\u00a0":
        lowered = lowered.replace(c, " ")
    return [w for w in lowered.split(" ") if w]


def test_words_are_pythons_lowercase_split() -> None:
    texts = _texts(1, 3000)
    w = ngrams.words(pl.Series(texts, dtype=pl.String))
    expected = [_split(t) for t in texts]
    assert w.counts.tolist() == [len(e) for e in expected]
    # one hash per distinct word, the same wherever the word stands
    flat = [word for e in expected for word in e]
    by_word: dict[str, int] = {}
    for word, h in zip(flat, w.hashes.tolist()):
        assert by_word.setdefault(word, h) == h, word
    assert len(set(by_word.values())) == len(by_word)


def test_words_of_a_slice_match_the_whole() -> None:
    series = pl.Series(_texts(2, 500), dtype=pl.String)
    whole, part = ngrams.words(series), ngrams.words(series.slice(100, 50))
    assert part.hashes.tolist() == whole.select(np.arange(100, 150)).hashes.tolist()


def _reference_signatures(w: ngrams.Words, shingle: int) -> np.ndarray:
    """Every shingle materialised, per-bin minima by np.minimum.at, then each empty bin, one at a time, copies
    the first non-empty bin along its sequence (kernels.BORROW), else the next non-empty one round."""
    shingles, text = ngrams.ngrams(w, shingle, short=True)
    n = len(w)
    index = text.astype(np.uint64) * np.uint64(minhash.SLOTS) + (shingles >> np.uint64(58))
    table = np.full(n * minhash.SLOTS, 0xFFFFFFFF, dtype=np.uint32)
    np.minimum.at(table, index, shingles.astype(np.uint32))
    table = table.reshape(n, minhash.SLOTS)
    out = table.copy()
    for t in range(n):
        row = table[t]
        if (row == 0xFFFFFFFF).all():
            continue
        for j in np.flatnonzero(row == 0xFFFFFFFF):
            source = next((int(b) for b in kernels.BORROW[j] if row[b] != 0xFFFFFFFF), None)
            if source is None:
                source = next(int(k % minhash.SLOTS) for k in range(j + 1, j + minhash.SLOTS + 1)
                              if row[k % minhash.SLOTS] != 0xFFFFFFFF)
            out[t, j] = row[source]
    return out.astype(np.uint16)


@pytest.mark.parametrize("shingle", [1, 3, 5])
def test_signatures_and_keys_match_the_numpy_definition(shingle: int) -> None:
    rng = random.Random(shingle)
    vocab = [f"w{i}" for i in range(300)]
    texts = [" ".join(rng.choices(vocab, k=rng.choice([0, 1, 2, 4, 5, 9, 40, 200]))) for _ in range(1000)]
    w = ngrams.words(pl.Series(texts))
    keys, sig = minhash.signatures(w, shingle)
    ok = w.counts > 0  # a text without words carries noise, left out by the caller
    assert np.array_equal(sig[ok], _reference_signatures(w, shingle)[ok])
    assert np.array_equal(keys, ngrams.text_keys(w))


def test_near_copies_agree_on_most_slots_and_strangers_on_few() -> None:
    rng = random.Random(3)
    vocab = [f"w{i}" for i in range(5000)]
    base = rng.choices(vocab, k=120)
    near = base[:60] + ["changed"] + base[61:]
    other = rng.choices(vocab, k=120)
    _, sig = minhash.signatures(ngrams.words(pl.Series([" ".join(base), " ".join(near), " ".join(other)])), 5)
    same = minhash.similarity(sig, np.array([[0, 1], [0, 2]]))
    assert same[0] > 0.85 and same[1] < 0.1


def test_probe_finds_exactly_the_texts_holding_a_listed_gram() -> None:
    from prefmix.validators import overlap

    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(50)]
    texts = [" ".join(rng.choices(vocab, k=rng.choice([0, 3, 9, 10, 11, 30]))) for _ in range(3000)]
    w = ngrams.words(pl.Series(texts))
    m, stride = 10, 4
    grams, owner = ngrams.ngrams(w, m)
    listed = np.unique(np.array(rng.sample(grams.tolist(), 40), dtype=np.uint64))  # only stride-aligned ones count
    start = np.concatenate([np.arange(c - m + 1) for c in w.counts if c >= m]) if len(grams) else grams
    aligned = (start % stride) == 0
    expected = np.zeros(len(w), dtype=bool)
    expected[owner[aligned & np.isin(grams, listed)]] = True
    table = overlap._bit_table(listed)
    found = kernels.probe(w.hashes, w.offsets, m, stride, ngrams.P, table, overlap.PROBE_BITS, listed)
    assert expected.any() and np.array_equal(found, expected)


def test_band_keys_in_one_pass_match_the_definition() -> None:
    sig = np.random.default_rng(4).integers(0, 1 << 16, (3000, minhash.SLOTS), dtype=np.uint16)
    keys = minhash.band_keys(sig)
    assert keys.shape == (minhash.BANDS, 3000)
    for band in range(minhash.BANDS):
        assert np.array_equal(keys[band], minhash.band_key(sig, band))
    # equal slots in a band give equal keys, one changed slot another key
    other = sig.copy()
    other[0, 7] ^= 1
    assert minhash.band_keys(other)[1, 0] != keys[1, 0] and minhash.band_keys(other)[0, 0] == keys[0, 0]


def test_unrelated_prompts_share_no_band_by_chance() -> None:
    """A run of empty bins must be as distinct as the minimum it is filled from. 20k short prompts of 10
    words drawn from a million (no shingle in common, so every candidate is chance) leave most bins empty:
    filled by rotation from the next non-empty bin's 16-bit value (plus steps) they gave 11,319 candidate
    pairs."""
    rng = np.random.default_rng(9)
    texts = [" ".join(f"w{i}" for i in rng.integers(0, 1_000_000, 10)) for _ in range(20_000)]
    _, sig = minhash.signatures(ngrams.words(pl.Series(texts)), 5)
    assert len(minhash.candidate_pairs(sig)) == 0
