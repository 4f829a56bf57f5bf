# bash gradio_demo.sh            (MODEL=... DEVICE=cuda HOST=0.0.0.0 PORT=7860 FPS=2 MEMORY=window bash gradio_demo.sh)
#
# Starts the gradio demo (gradio_demo.py) in the project's environment. Settings come from environment
# variables, and any argument is passed on (e.g. --capacities 2,2,12 --window 16):
#   MODEL    checkpoint directory or hub id (default: the bundled tiny model trained on the synthetic world)
#   DEVICE   cuda, cpu, ... (default: cuda when available)      DTYPE  bf16, fp16 or fp32
#   HOST     127.0.0.1 (default: this machine only; 0.0.0.0 serves the network)     PORT  7860
#   FPS      frames the stream takes a second                  MEMORY pyramid, window or uniform
#            (FPS and MEMORY default to what the model's checkpoint records: the rate and memory it was trained with)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-$here/.venv/bin/python}"
[ -x "$py" ] || { echo "error: $py not found: run 'make setup' first (or set PYTHON)" >&2; exit 2; }
args=(--host "${HOST:-127.0.0.1}" --port "${PORT:-7860}")
[ -n "${FPS:-}" ] && args+=(--fps "$FPS")
[ -n "${MEMORY:-}" ] && args+=(--memory "$MEMORY")
[ -n "${MODEL:-}" ] && args+=(--model "$MODEL")
[ -n "${DEVICE:-}" ] && args+=(--device "$DEVICE")
[ -n "${DTYPE:-}" ] && args+=(--dtype "$DTYPE")
exec "$py" "$here/gradio_demo.py" "${args[@]}" "$@"
