#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install the project into it.
#
#   bash scripts/setup_env.sh        # VENV=.venv PYTHON=python3 by default
#
# torch goes in first, so that the project's `torch>=2.4` requirement is already met and pip never
# swaps in another build. On a machine without an NVIDIA GPU a plain `pip install torch` would pull
# several GB of CUDA libraries: there, point TORCH_PIP_ARGS at a CPU wheel index or a wheel folder
# (e.g. TORCH_PIP_ARGS="--index-url <your CPU wheel index>"), or pre-install a CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  # shellcheck disable=SC2086  # TORCH_PIP_ARGS is a list of pip options
  "${pip[@]}" install -q ${TORCH_PIP_ARGS:-} "torch==$TORCH_VERSION"
fi
# The project, and the lmms-eval plug-in (which brings lmms-eval). The constraint keeps the torch build
# installed above: lmms-eval's requirements would otherwise upgrade it to the newest CUDA build.
constraints="$VENV/torch-constraint.txt"
"$VENV/bin/python" -c "import torch; print('torch==' + torch.__version__)" >"$constraints"
"${pip[@]}" install -q -c "$constraints" -e ".[video,train,dev]" -e ./lmms-eval-ovbench

# Nothing here needs torchvision, but lmms-eval pulls it in; a CUDA build of it on a CPU machine breaks
# `import transformers`' image code, so a torchvision that does not import is removed.
if "${pip[@]}" show torchvision >/dev/null 2>&1 && ! "$VENV/bin/python" -c "import torchvision" 2>/dev/null; then
  "${pip[@]}" uninstall -q -y torchvision
fi
"$VENV/bin/python" -c "import torch, transformers, videochat_online; print(f'ready: torch {torch.__version__}, transformers {transformers.__version__}, cuda={torch.cuda.is_available()}')"
