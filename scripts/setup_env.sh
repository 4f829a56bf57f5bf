#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install the project into it, on the locked versions.
#
#   bash scripts/setup_env.sh        # VENV=.venv PYTHON=python3 LOCK=requirements.txt by default
#
# requirements.txt is the lock: the exact version of every package the test environment had when the
# tests last passed (scripts/refresh_lock.sh writes it). It is applied as pip constraints, so a fresh
# machine gets that environment whatever was released since; LOCK=none resolves afresh (the refresh
# script does that). pyproject.toml keeps the ranges the code supports.
#
# torch goes in first, at the locked version, so that nothing later swaps in another build. On a
# machine without an NVIDIA GPU a plain `pip install torch` pulls several GB of CUDA libraries: there,
# point TORCH_PIP_ARGS at a CPU wheel index or a wheel folder (e.g. TORCH_PIP_ARGS="--index-url <your CPU
# wheel index>"), or pre-install a CPU build of the locked version.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
LOCK=${LOCK:-requirements.txt}
if [ "$LOCK" != none ] && [ ! -f "$LOCK" ]; then
  echo "error: $LOCK: no such lock file (LOCK=none resolves without one)" >&2
  exit 2
fi
locked_torch=$([ "$LOCK" != none ] && sed -n 's/^torch==\([^ ;]*\).*/\1/p' "$LOCK" || true)
TORCH_VERSION=${TORCH_VERSION:-${locked_torch:-2.13.0}}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)

if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  # shellcheck disable=SC2086  # TORCH_PIP_ARGS is a list of pip options
  "${pip[@]}" install -q ${TORCH_PIP_ARGS:-} "torch==$TORCH_VERSION"
fi

# Constraints: the lock, plus the torch build installed above (a CPU build stays a CPU build: lmms-eval's
# requirements would otherwise upgrade it to the newest CUDA build).
constraints="$VENV/constraints.txt"
{
  [ "$LOCK" = none ] || grep -v '^torch==' "$LOCK"
  "$VENV/bin/python" -c "import torch; print('torch==' + torch.__version__)"
} >"$constraints"
# The project, and the lmms-eval plug-in (which brings lmms-eval).
"${pip[@]}" install -q -c "$constraints" -e ".[video,train,demo,dev]" -e ./lmms-eval-ovbench

# The demo's browser test drives Debian's chromium through playwright (playwright's own browser downloads
# are not used). Installed when missing and this user may run apt-get; CHROMIUM=/path names another binary.
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  apt=()
  if [ "$(id -u)" = 0 ]; then apt=(apt-get); elif sudo -n true 2>/dev/null; then apt=(sudo -n apt-get); fi
  if [ ${#apt[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the demo's browser test"
    "${apt[@]}" update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq chromium >/dev/null
  else
    echo "warning: chromium is not installed and apt-get cannot be run here; tests/test_gradio_demo.py needs it" \
         "(apt-get install chromium, or CHROMIUM=/path/to/chromium)" >&2
  fi
fi

# Nothing here needs torchvision, but lmms-eval (and timm) require it. PyPI's build is a CUDA build; on a
# CPU machine it cannot be imported and breaks `import transformers`' image code, so a torchvision that
# does not import is removed.
removed_torchvision=0
if "${pip[@]}" show torchvision >/dev/null 2>&1 && ! "$VENV/bin/python" -c "import torchvision" 2>/dev/null; then
  "${pip[@]}" uninstall -q -y torchvision
  removed_torchvision=1
fi

# The environment must be consistent: `pip check` may report only the torchvision removed above.
problems=$("${pip[@]}" check 2>&1 | grep -v '^No broken requirements' || true)
if [ "$removed_torchvision" = 1 ]; then
  problems=$(echo "$problems" | grep -v 'requires torchvision, which is not installed' || true)
fi
if [ -n "$problems" ]; then
  echo "error: pip check found an inconsistent environment in $VENV:" >&2
  echo "$problems" >&2
  exit 1
fi
"$VENV/bin/python" -c "import torch, transformers, videochat_online; print(f'ready: torch {torch.__version__}, transformers {transformers.__version__}, cuda={torch.cuda.is_available()}')"
