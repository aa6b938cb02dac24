#!/usr/bin/env bash
# Install (once, with the dev extra) and run the whole test suite, offline.
set -uo pipefail
cd "$(dirname "$0")/.."
EXTRAS=dev bash scripts/install.sh || exit 1
export WANDB_MODE=offline HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check . || exit 1
.venv/bin/python -m pytest -q "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi
exit $rc
