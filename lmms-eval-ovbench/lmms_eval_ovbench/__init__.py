"""OVBench tasks and the VideoChat-Online model for lmms-eval.

The tasks live in `tasks/ovbench` beside this package (give lmms-eval `--include_path` to it); the
model is found by lmms-eval through this package's `lmms_eval.models` entry point.
"""

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks" / "ovbench"
