#!/usr/bin/env bash
# Install (once) and run the validator; flags pass through. With none, it runs the
# embedded local subnet on this CPU for 20 steps.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
[ $# -eq 0 ] && set -- --neuron.max_steps 20
exec .venv/bin/python neurons/validator.py "$@"
