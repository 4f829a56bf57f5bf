#!/usr/bin/env bash
# Refresh the lock (requirements.txt): resolve every dependency afresh, run the tests, write the lock.
#
#   bash scripts/refresh_lock.sh          # TORCH_VERSION=... to move torch too
#
# Run it when you change a dependency in pyproject.toml, or to move the project onto newer releases.
# It builds a throw-away environment with no lock (today's newest releases within pyproject.toml's
# ranges), runs the whole test suite there, and only when every test passes writes `pip freeze` of that
# environment to requirements.txt. Commit the new lock with the change that needed it.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
venv="$work/venv"
LOCK=none VENV="$venv" bash scripts/setup_env.sh
"$venv/bin/python" -m pytest -q -p no:cacheprovider

{
  echo "# The lock: exact versions of the test environment when the tests last passed."
  echo "# Written by scripts/refresh_lock.sh on $(date -u +%F) (Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'));"
  echo "# scripts/setup_env.sh applies it as pip constraints. Edit pyproject.toml, not this file."
  # torch without its local build tag (+cpu), so that the same line fits a CUDA build of that version.
  "$venv/bin/python" -m pip freeze --exclude-editable --disable-pip-version-check | sed 's/^torch==\([^+]*\)+.*/torch==\1/' | LC_ALL=C sort -f
} >requirements.txt
echo "wrote requirements.txt ($(grep -vc '^#' requirements.txt) packages)"
