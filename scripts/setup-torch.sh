#!/usr/bin/env bash
# Create the PyTorch virtual environment used by scripts/*.py and benches/torch/bench.py:
#   scripts/setup-torch.sh            -> <repo>/.venv (git-ignored)
# Afterwards run e.g. `.venv/bin/python scripts/torch_reference.py`.
# Set PYTHON to choose the interpreter (default python3, >= 3.10).
# CPU-only torch wheels: PIP_INDEX_URL=https://download.pytorch.org/whl/cpu \
#   PIP_EXTRA_INDEX_URL=https://pypi.org/simple scripts/setup-torch.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"${PYTHON:-python3}" -m venv .venv
.venv/bin/pip install --upgrade pip
.venv/bin/pip install -r scripts/requirements.txt
.venv/bin/python -c 'import torch, torchvision, numpy, safetensors; print("torch", torch.__version__, "ready in", "'"$root"'/.venv")'
