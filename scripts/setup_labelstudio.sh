#!/usr/bin/env bash
# Idempotent setup of the labeling-tool side of routing (issue 16). Each step is skipped when done.
#
#   .venv-labelstudio  the Label Studio server (label-studio, which pins label-studio-sdk==2.1.2). Its own
#                      environment: its pins clash with the app's (pyarrow<25 where the app has 26,
#                      pytz<2023, Django 5.2, boto3/google-cloud/... ~140 packages).
#   .venv              label-studio-sdk and argilla (SDK only; argilla's server needs Elasticsearch) go into
#                      the app environment: `pip check` stays clean and prefect 3.9 is untouched, but the SDK's
#                      opencv-python-headless 4.12 caps numpy<2.3, so numpy moves 2.4.x -> 2.2.6 there.
#   .prefmix/labelstudio/template-<version>.sqlite3
#                      a migrated, empty Label Studio database the test fixture copies, so a test session
#                      starts the server in ~15-25 s instead of ~90-180 s of migrations on 2 shared cores.
#
#   scripts/setup_labelstudio.sh              # all three
#   SKIP_TEMPLATE=1 scripts/setup_labelstudio.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
LABEL_STUDIO_VERSION="1.23.2"
SDK_VERSION="2.1.2"       # the version label-studio 1.23.2 pins
ARGILLA_VERSION="2.8.0"
LOG=.prefmix/setup-labelstudio.log
mkdir -p .prefmix
: >"$LOG"

step() { printf '==> %s\n' "$*"; }
quiet() { "$@" >>"$LOG" 2>&1 || { echo "setup failed: $* (see $LOG)" >&2; tail -20 "$LOG" >&2; exit 1; }; }
has() { "$1" -c "import importlib.metadata as m, sys; sys.exit(m.version('$2') != '$3')" 2>/dev/null; }
start=$(date +%s)

if ! has .venv-labelstudio/bin/python label-studio "$LABEL_STUDIO_VERSION"; then
  step "Label Studio server environment (.venv-labelstudio: label-studio==$LABEL_STUDIO_VERSION)"
  [ -x .venv-labelstudio/bin/python ] || quiet "$PY" -m venv .venv-labelstudio
  quiet .venv-labelstudio/bin/pip install "label-studio==$LABEL_STUDIO_VERSION"
  quiet .venv-labelstudio/bin/pip check
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup_labelstudio: .venv is missing; run scripts/setup.sh first (the SDKs go into the app environment)" >&2
  exit 1
fi
if ! has .venv/bin/python label-studio-sdk "$SDK_VERSION" || ! has .venv/bin/python argilla "$ARGILLA_VERSION"; then
  step "SDKs into the app environment (.venv: label-studio-sdk==$SDK_VERSION argilla==$ARGILLA_VERSION)"
  quiet .venv/bin/pip install "label-studio-sdk==$SDK_VERSION" "argilla==$ARGILLA_VERSION"
  quiet .venv/bin/pip check
fi

if [ -z "${SKIP_TEMPLATE:-}" ]; then
  step "migrated Label Studio template database (.prefmix/labelstudio)"
  quiet .venv/bin/python -m tests.routing.labelstudio_server template
fi

step "ready ($(( $(date +%s) - start )) s): label-studio $LABEL_STUDIO_VERSION, label-studio-sdk $SDK_VERSION, argilla $ARGILLA_VERSION"
