"""OVBench tasks and the VideoChat-Online model for lmms-eval.

The tasks live in two folders beside this package, `tasks/ovbench` and `tasks/streaming_benchmarks` (give
lmms-eval `--include_path` to one); the model is found by lmms-eval through this package's `lmms_eval.models`
entry point.
"""

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks" / "ovbench"
# OVO-Bench's and StreamingBench's multiple-choice tasks; their annotation files are fetched into its data/
STREAMING_TASKS_DIR = TASKS_DIR.parent / "streaming_benchmarks"

# The reply the videochat_online model gives a document it could not answer (an unreadable video, a
# prompt whose <image> count does not match its images, ...), followed by the reason. The OVBench tasks
# count such replies in their `ovbench_failed` metric, and `lmms_eval_ovbench.check` fails a run that
# has any (in its metrics or in its logged samples).
FAILED_REPLY_PREFIX = "[videochat_online failed] "
