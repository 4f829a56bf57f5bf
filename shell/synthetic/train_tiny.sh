# bash shell/synthetic/train_tiny.sh            (OUTPUT_DIR=runs/synthetic CONFIG=shell/synthetic/tiny.yaml)
#
# Trains a tiny VideoChat-Online from scratch on the synthetic world with the project's stage 1 and
# stage 2 training, evaluates it with the OVBench evaluation (stream = pyramid memory, window and
# uniform at an equal visual-token budget; stage 1 alone and stage 1 + 2) and writes
# OUTPUT_DIR/results.md. About 28 minutes on 2 CPU cores (24 of them training); a step whose output exists is skipped, so
# running it again continues an interrupted run. The bundled models/videochat-online-synthetic-tiny is
# OUTPUT_DIR/stage2 of this command.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-$here/../../.venv/bin/python}"
[ -x "$py" ] || { echo "error: $py not found: run 'make setup' first (or set PYTHON)" >&2; exit 2; }
exec "$py" -m videochat_online.synthetic.recipe --config "${CONFIG:-$here/tiny.yaml}" \
  --output-dir "${OUTPUT_DIR:-runs/synthetic}" "$@"
