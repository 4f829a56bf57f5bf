#!/usr/bin/env bash
# Check that the floors in pyproject.toml are true: build a throw-away environment where every direct
# dependency sits at its lowest declared version, and run the model, streaming and evaluation tests there.
#
#   bash scripts/check_floor.sh [PYTEST_ARGS...]
#
# Not part of CI (it builds a second environment, ~3 minutes). Run it when you lower a floor or start
# using a newer library feature. torch stays at the locally installed build (TORCH_VERSION, default: the
# lock's), since other torch builds are multi-GB downloads; lmms-eval is not installed (its floor is the
# locked version).
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
venv="$work/venv"
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-$(sed -n 's/^torch==\([^ ;]*\).*/\1/p' requirements.txt)}
"$PYTHON" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
# shellcheck disable=SC2086
"${pip[@]}" install ${TORCH_PIP_ARGS:-} "torch==$TORCH_VERSION"

# name>=X in [project] dependencies and the extras -> name==X (torch excepted)
"$venv/bin/python" - >"$work/floors.txt" <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
specs = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
floors = {}
for spec in specs:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*>=\s*([^,;\s]+)", spec)
    if match and match.group(1).lower() != "torch":
        floors[match.group(1).lower()] = match.group(2)
for name, version in sorted(floors.items()):
    print(f"{name}=={version}")
PY
echo "floors:"; sed 's/^/  /' "$work/floors.txt"
"${pip[@]}" install -c "$work/floors.txt" -e ".[video,train,dev]"
"$venv/bin/python" -m pip check
"$venv/bin/python" -c "import transformers, videochat_online; print('transformers', transformers.__version__)"
tests=(tests/test_model_loading.py tests/test_checkpoint_errors.py tests/test_generation.py tests/test_memory.py
       tests/test_streaming.py tests/test_video.py tests/test_ovbench.py tests/test_train.py)
[ $# -gt 0 ] && tests=("$@")
"$venv/bin/python" -m pytest -q -p no:cacheprovider "${tests[@]}"
