#!/usr/bin/env bash
# Every system at GPU scale, one JSON (README, "Scaling out"): run from the repository root on a machine
# with an NVIDIA GPU. Installs rewire with JAX's CUDA wheels into .venv unless it is there already.
set -euo pipefail
out="${1:-runs/gpu-check.json}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q -e ".[cuda]"
fi
.venv/bin/python -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" \
  || { echo "gpu_check: JAX sees no GPU here (pip install -e '.[cuda]')" >&2; exit 2; }
exec timeout 480 .venv/bin/python benchmarks/gpu_check.py --json "$out"
