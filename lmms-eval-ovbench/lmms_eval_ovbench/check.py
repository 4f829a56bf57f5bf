"""Check an lmms-eval run by its output files (lmms-eval exits 0 even when an evaluation fails).

    python -m lmms_eval_ovbench.check OUTPUT_PATH TASK [TASK ...] [--since EPOCH_SECONDS]

Exit 0, printing the metrics, when the newest results file written since the run started has a metric for
every TASK and no document failed (`ovbench_failed` 0, no logged failure reply); else what is wrong, exit 1.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from . import FAILED_REPLY_PREFIX


def newest_results(output_path: Path) -> Path | None:
    files = sorted(output_path.rglob("*_results.json"), key=lambda p: p.stat().st_mtime)
    return files[-1] if files else None


def check(output_path: Path, tasks: list[str], since: float = 0.0) -> list[str]:
    """Problems with a run's results (empty when every task has its metrics)."""
    file = newest_results(output_path)
    if file is None or file.stat().st_mtime < since:
        return [f"{output_path}: no results file from this run (lmms-eval failed; see its log)"]
    results = json.loads(file.read_text()).get("results", {})
    problems = []
    for task in tasks:
        metrics = {k: v for k, v in results.get(task, {}).items()
                   if "," in k and "stderr" not in k and isinstance(v, (int, float))}
        if not metrics:
            problems.append(f"{file}: no metrics for task {task}")
        elif task.startswith("ovbench") and not math.isfinite(metrics.get("ovbench_overall,none", math.nan)):
            problems.append(f"{file}: task {task} has no ovbench_overall")
        elif metrics.get("ovbench_failed,none", 0) > 0:
            problems.append(f"{file}: task {task}: {int(metrics['ovbench_failed,none'])} questions failed "
                            "(see the run's log)")
    problems += failed_samples(file.parent, tasks, since)
    return problems


def _replies(sample: dict) -> list[str]:
    """Every reply string of a logged sample (lmms-eval nests them in lists)."""
    found, stack = [], [sample.get("resps"), sample.get("filtered_resps")]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, list):
            stack.extend(item)
    return found


def failed_samples(folder: Path, tasks: list[str], since: float) -> list[str]:
    """Logged samples of this run whose reply is the model's failure reply, summed up per task."""
    problems = []
    for task in tasks:
        failed = []
        for file in folder.glob(f"*_samples_{task}.jsonl"):
            if file.stat().st_mtime < since:
                continue
            for line in file.read_text().splitlines():
                sample = json.loads(line)
                reasons = [r for r in _replies(sample) if r.startswith(FAILED_REPLY_PREFIX)]
                if reasons:
                    failed.append(f"doc {sample.get('doc_id')}: {reasons[0][len(FAILED_REPLY_PREFIX):]}")
        if failed:
            problems.append(f"{folder}: task {task}: {len(failed)} documents failed, first: {failed[0]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmms_eval_ovbench.check", description=__doc__.split("\n")[0])
    parser.add_argument("output_path", type=Path)
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--since", type=float, default=0.0, help="ignore results files older than this (epoch s)")
    args = parser.parse_args(argv)
    problems = check(args.output_path, args.tasks, args.since)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 1
    results = json.loads(newest_results(args.output_path).read_text())["results"]
    for task in args.tasks:
        print(task, json.dumps({k.split(",")[0]: v for k, v in results[task].items() if "," in k and "stderr" not in k}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
