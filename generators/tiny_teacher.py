"""Build a tiny, offline, random-weight Llama that vLLM's CPU backend can serve.

Run with the TEACHER interpreter (the one that has torch/transformers):

    .venv-teacher/bin/python generators/tiny_teacher.py OUT_DIR --seed N

Only stdlib + torch/tokenizers/safetensors are used, and the latter are imported
inside functions, so the app env (no torch) may import this module for
`is_build`; teacher_folder.py (stdlib) swaps the build into place.  The same seed yields byte-identical files: every input is derived
from the seed, JSON is written with sorted keys, and nothing records a time.
On success the only output is OUT_DIR on stdout; on failure one line on stderr
and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

try:
    from prefmix.generators.teacher_folder import build_folder, read_json, report, write_json
except ImportError:  # run as a script by the teacher interpreter, which has no prefmix installed
    from teacher_folder import build_folder, read_json, report, write_json  # type: ignore[no-redef]

MARKER = "prefmix-tiny.json"
# Bump when the produced files change shape, so cached builds are rebuilt.
FORMAT_VERSION = 1

VOCAB_SIZE = 512
HIDDEN = 128
HEADS = 2  # head dim 64: vLLM's CPU attention kernel rejects head dim 16
LAYERS = 2
INTERMEDIATE = 256
MAX_POSITIONS = 2048
PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SPECIALS = [PAD, BOS, EOS]  # ids 0, 1, 2

# Role markers used by the chat template; they also go into the corpus so BPE
# learns them as a few tokens.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

WORDS: dict[str, list[str]] = {
    "general": [
        "the", "a", "is", "are", "was", "this", "that", "with", "for", "and",
        "or", "not", "answer", "question", "response", "helpful", "clear",
        "because", "explain", "example", "people", "time", "good", "better",
        "best", "simple", "short", "long", "world", "work", "make", "think",
        "know", "use", "should", "could", "would", "many", "most", "some",
    ],
    "finance": [
        "market", "stock", "bond", "interest", "rate", "inflation", "budget",
        "loan", "credit", "debt", "asset", "risk", "return", "portfolio",
        "dividend", "tax", "bank", "price", "investor", "revenue", "profit",
    ],
    "medicine": [
        "patient", "doctor", "symptom", "dose", "treatment", "diagnosis",
        "blood", "pressure", "heart", "infection", "vaccine", "therapy",
        "clinical", "trial", "drug", "pain", "fever", "chronic", "acute",
    ],
    "law": [
        "court", "contract", "judge", "law", "legal", "statute", "liability",
        "plaintiff", "defendant", "appeal", "rights", "evidence", "claim",
        "agreement", "clause", "breach", "jurisdiction", "counsel", "ruling",
    ],
}
JSON_KEYS = ["score", "rationale", "prompt", "chosen", "rejected", "label",
             "domain", "reason", "verdict", "winner"]
ROLES = ["system", "user", "assistant"]


def _sentence(rng: random.Random, domain: str) -> str:
    """One capitalised sentence mixing general and domain words."""
    pool = WORDS["general"] + WORDS[domain] * 2
    words = [rng.choice(pool) for _ in range(rng.randint(4, 14))]
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice([".", ".", "?", "!"])


def _json_snippet(rng: random.Random) -> str:
    """A small JSON object so braces, quotes, colons and digits get merges."""
    obj: dict[str, Any] = {}
    for key in rng.sample(JSON_KEYS, rng.randint(1, 4)):
        kind = rng.random()
        if kind < 0.4:
            obj[key] = rng.randint(0, 100)
        elif kind < 0.5:
            obj[key] = rng.choice([True, False, None])
        else:
            obj[key] = _sentence(rng, rng.choice(list(WORDS)))[:60]
    return json.dumps(obj, indent=rng.choice([None, 2]))


def build_corpus(seed: int, n: int = 4000) -> list[str]:
    """Deterministic training lines: prose, chat turns, JSON and numbers."""
    rng = random.Random(seed)
    lines: list[str] = []
    for _ in range(n):
        r = rng.random()
        domain = rng.choice(list(WORDS))
        if r < 0.5:
            lines.append(" ".join(_sentence(rng, domain) for _ in range(rng.randint(1, 3))))
        elif r < 0.7:
            lines.append(f"<|{rng.choice(ROLES)}|>\n{_sentence(rng, domain)}")
        elif r < 0.9:
            lines.append(_json_snippet(rng))
        else:
            lines.append(" ".join(str(rng.randint(0, 10 ** rng.randint(1, 6))) for _ in range(8)))
    return lines


def train_tokenizer(seed: int) -> Any:
    """Train a 512-token byte-level BPE tokenizer with a BOS post-processor."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable
        show_progress=False,
    )
    tok.train_from_iterator(build_corpus(seed), trainer=trainer)
    if tok.get_vocab_size() != VOCAB_SIZE:
        raise RuntimeError(f"tokenizer has {tok.get_vocab_size()} tokens, want {VOCAB_SIZE}")
    # Like Llama: plain encode() prepends BOS; chat templates add it themselves.
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, 1)]
    )
    return tok


def model_config() -> dict[str, Any]:
    """HF config.json for a LlamaForCausalLM of the tiny shape."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": VOCAB_SIZE,
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "head_dim": HIDDEN // HEADS,
        "hidden_act": "silu",
        "max_position_embeddings": MAX_POSITIONS,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "initializer_range": 0.02,
        "torch_dtype": "bfloat16",
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }


def random_weights(seed: int) -> dict[str, Any]:
    """Llama-named random tensors (bf16) from a seeded CPU generator."""
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)

    def normal(*shape: int) -> Any:
        return (torch.randn(*shape, generator=gen) * 0.02).to(torch.bfloat16)

    def ones(n: int) -> Any:
        return torch.ones(n, dtype=torch.bfloat16)

    w: dict[str, Any] = {"model.embed_tokens.weight": normal(VOCAB_SIZE, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            w[p + f"self_attn.{name}.weight"] = normal(HIDDEN, HIDDEN)
        w[p + "mlp.gate_proj.weight"] = normal(INTERMEDIATE, HIDDEN)
        w[p + "mlp.up_proj.weight"] = normal(INTERMEDIATE, HIDDEN)
        w[p + "mlp.down_proj.weight"] = normal(HIDDEN, INTERMEDIATE)
        w[p + "input_layernorm.weight"] = ones(HIDDEN)
        w[p + "post_attention_layernorm.weight"] = ones(HIDDEN)
    w["model.norm.weight"] = ones(HIDDEN)
    w["lm_head.weight"] = normal(VOCAB_SIZE, HIDDEN)
    return {k: v.contiguous() for k, v in sorted(w.items())}


def tokenizer_config() -> dict[str, Any]:
    """tokenizer_config.json for PreTrainedTokenizerFast, with the chat template."""
    added = {
        str(i): {"content": t, "lstrip": False, "normalized": False,
                 "rstrip": False, "single_word": False, "special": True}
        for i, t in enumerate(SPECIALS)
    }
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "unk_token": None,
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": MAX_POSITIONS,
        "chat_template": CHAT_TEMPLATE,
    }


def write_model(dest: Path, seed: int) -> None:
    """Write every model/tokenizer file of the tiny teacher into dest."""
    from safetensors.torch import save_file

    tok = train_tokenizer(seed)
    tok.save(str(dest / "tokenizer.json"), pretty=True)
    write_json(dest / "tokenizer_config.json", tokenizer_config())
    write_json(dest / "special_tokens_map.json", {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD})
    write_json(dest / "config.json", model_config())
    write_json(dest / "generation_config.json", {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0})
    # Fixed metadata only: safetensors stores no time, and tensors are sorted.
    save_file(random_weights(seed), str(dest / "model.safetensors"), metadata={"format": "pt"})
    # Marker last: its presence means the directory is complete.
    write_json(dest / MARKER, {"seed": seed, "format_version": FORMAT_VERSION,
                                "vocab_size": VOCAB_SIZE, "hidden_size": HIDDEN})


def is_build(out: Path, seed: int) -> bool:
    """True if `out` is a complete build of this format for this seed."""
    meta = read_json(out / MARKER)
    return bool(isinstance(meta, dict) and meta.get("seed") == seed and meta.get("format_version") == FORMAT_VERSION)


def build(out: Path, seed: int) -> Path:
    """Build into a temp dir beside `out`, then swap it into place."""
    return build_folder(out, MARKER, lambda folder: is_build(folder, seed), lambda tmp: write_model(tmp, seed),
                        "tiny-teacher")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    return report("tiny_teacher", lambda: build(args.out_dir, args.seed))


if __name__ == "__main__":
    sys.exit(main())
