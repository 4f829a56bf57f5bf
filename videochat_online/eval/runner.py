"""Evaluation runs: shards over processes, appends predictions as it goes, resumes, merges (docs/evaluation.md).

    videochat-online eval --model PATH --anno-dir DIR --data-root coin=DIR --protocol stream --output-dir runs/ovb
    torchrun --nproc_per_node 8 -m videochat_online.eval --model PATH ...      # one process per GPU

Each answer is appended to `predictions.rank{R}.jsonl` and flushed, so a killed run resumes; an unreadable
video fails its questions and the run goes on; `run_settings.json` refuses a resume made otherwise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, fields
from pathlib import Path

import torch

from ..errors import InputError
from ..options import Parser, run_main
from .options import EvalRequest, add_eval_args, check_eval_args, compared_results
from .benchmarks import Benchmark, VideoTask
from .driver import Driver
from .protocols import Protocol, protocol_of
from .results import protocol_line

log = logging.getLogger("videochat_online.eval")


# Processes
def init_distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank); starts torch.distributed when launched by torchrun with > 1 process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return rank, world, local_rank


def barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def shard(tasks: list[VideoTask], world: int, protocol: Protocol) -> list[list[VideoTask]]:
    """Split videos over `world` processes, costliest first to the least loaded (the same on every rank)."""
    shards: list[list[VideoTask]] = [[] for _ in range(world)]
    loads = [0.0] * world
    costs = {t.key: protocol.cost(t) for t in tasks}
    for task in sorted(tasks, key=lambda t: (-costs[t.key], t.key)):
        r = min(range(world), key=lambda i: (loads[i], i))
        shards[r].append(task)
        loads[r] += costs[task.key]
    return shards


# Predictions on disk
RECORD_KEYS = ("id", "status", "correct")  # what a prediction line needs to be used
RESUME_KEYS = ("video_stamp", "written_at")  # what the process files add for resuming (not in predictions.jsonl)


def read_predictions(out_dir: Path, report: bool = False, required: Iterable[str] = RECORD_KEYS) -> dict[str, dict]:
    """Every prediction any process wrote, one per question (an `ok` record wins over a `failed` one, then the later
    answer over the earlier: a video replaced in place is answered again); a line that
    cannot be used (torn by a kill, not a prediction, or without one of the `required` fields) is skipped, and with
    `report` counted in the log."""
    required = tuple(dict.fromkeys([*RECORD_KEYS, *required]))
    best: dict[str, dict] = {}
    skipped = 0
    for file in sorted(out_dir.glob("predictions.rank*.jsonl")):
        for line in file.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                rec = None
            if not isinstance(rec, dict) or any(k not in rec for k in required) or not isinstance(rec["id"], str):
                skipped += bool(line.strip())
                continue
            if rec["id"] not in best or _rank(rec) >= _rank(best[rec["id"]]):
                best[rec["id"]] = rec
    if report and skipped:
        log.warning("%s: skipped %d prediction lines that cannot be used; their questions are answered again",
                    out_dir, skipped)
    return best


def _rank(rec: dict) -> tuple:
    """Which of two lines of one question stands: an `ok` one over a `failed` one, then the later answer."""
    at = rec.get("written_at")
    return rec["status"] == "ok", at if isinstance(at, (int, float)) else 0.0


SETTINGS_FILE = "run_settings.json"
SHOWN_AS = {"name": "protocol"}  # a setting as the options call it


def protocol_record(protocol: Protocol) -> dict:
    """The protocol's settings as JSON has them, memory flattened (`mode`: the memory it answers from, and that
    policy's options)."""
    config = protocol.config
    settings = {f.name: getattr(config, f.name) for f in fields(config) if f.name != "memory"}
    return json.loads(json.dumps({**settings, **protocol.memory.to_dict()}))


def answer_settings(model: str, protocol: Protocol, dtype: str | None) -> dict:
    """The settings that decide a prediction (flat, as JSON has them; batching decides none): two runs may share
    an output folder only if these agree."""
    protocol = protocol_record(protocol)
    protocol.pop("batch_size")
    return {"model": model, "dtype": dtype, **protocol}


def check_settings(out_dir: Path, settings: dict, write: bool = True) -> None:
    """Record the run's settings (`write`: rank 0), or refuse to resume into a folder whose predictions were
    made otherwise (every rank checks, so that no process writes into such a folder)."""
    file = out_dir / SETTINGS_FILE
    if file.exists():
        try:
            before = json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            before = None
        if not isinstance(before, dict):
            raise InputError(f"{file}: not a JSON object of settings; delete it only if every prediction beside it "
                             "was made with this run's settings")
        differ = [k for k in sorted(set(before) | set(settings)) if before.get(k) != settings.get(k)]
        if differ:
            k = differ[0]
            shown = SHOWN_AS.get(k, k)
            raise InputError(f"{out_dir}: holds predictions made with {shown}={before.get(k)!r}, this run has "
                             f"{shown}={settings.get(k)!r}; use another --output-dir"
                             + (f" ({len(differ) - 1} more settings differ)" if len(differ) > 1 else ""))
    elif list(out_dir.glob("predictions.rank*.jsonl")):
        raise InputError(f"{out_dir}: holds predictions but no {SETTINGS_FILE} saying how they were made; "
                         "use another --output-dir")
    elif write:  # whole or not at all: another rank may be reading it
        (out_dir / f".{SETTINGS_FILE}.tmp").write_text(json.dumps(settings, indent=2))
        (out_dir / f".{SETTINGS_FILE}.tmp").replace(file)


def total_work(out_dir: Path, world: int) -> dict:
    """This run's work over its processes (each wrote `.work.rank{R}.json`): frames encoded, predictions made,
    asks after a video's end, frames dropped (a protocol on the clock), and the slowest process's seconds."""
    parts = [json.loads((out_dir / f".work.rank{r}.json").read_text()) for r in range(world)]
    total = {k: sum(p[k] for p in parts) for k in ("frames_encoded", "questions_answered", "late_asks")}
    if any("frames_dropped" in p for p in parts):  # a protocol on the clock
        total["frames_dropped"] = sum(p.get("frames_dropped", 0) for p in parts)
    return {**total, "seconds": max(p["seconds"] for p in parts), "processes": world}


class PredictionWriter:
    """Appends records to a JSONL file, each flushed to disk before the next question."""

    def __init__(self, path: Path):
        self.count = 0  # records written by this writer
        if path.exists():  # drop a line torn by a kill, so that the next record starts on its own line
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                path.write_bytes(data[: data.rfind(b"\n") + 1])
        self.file = open(path, "a")

    def write(self, rec: dict) -> None:
        self.file.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.count += 1
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


def record_keys(benchmark: Benchmark, tasks: list[VideoTask], protocol: str) -> list[str]:
    """The fields every prediction line of these questions has (those that every question's failed line has)."""
    keys = None
    for q in (q for task in tasks for q in task.questions):
        line = benchmark.record(q, None, protocol, error="-")
        keys = list(line) if keys is None else [k for k in keys if k in line]
    return keys or []


def questions_hash(tasks: list[VideoTask]) -> str:
    """A content hash of the questions (ids, videos, texts, options, answers, times): a resume into a folder made
    from other question files, even under the same ids, is refused."""
    text = "\n".join(repr(q) for task in tasks for q in task.questions)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def merge(out_dir: Path, tasks: list[VideoTask], meta: dict, benchmark: Benchmark, required: Iterable[str]) -> dict:
    """predictions.jsonl (in question-file order) and the results files, from every process's predictions."""
    found = read_predictions(out_dir, required=required)
    order = sorted((q.qid for task in tasks for q in task.questions), key=benchmark.order)
    missing = [qid for qid in order if qid not in found]
    if missing:
        raise RuntimeError(f"{out_dir}: {len(missing)} questions have no prediction (e.g. {missing[:3]})")
    records = [{k: v for k, v in found[qid].items() if k not in RESUME_KEYS} for qid in order]
    with open(out_dir / "predictions.jsonl", "w") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return benchmark.write_results(out_dir, records, meta)


# The run
def video_stamp(path: Path) -> list | None:
    """What changes when a video is replaced in place (cheap: no decoding): a file's size and modification time;
    a frame folder's file count, total size and newest modification time. None: nothing there."""
    try:
        if path.is_dir():
            stats = [e.stat() for e in os.scandir(path) if e.is_file()]
            return [len(stats), sum(st.st_size for st in stats), max((st.st_mtime_ns for st in stats), default=0)]
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def evaluate_tasks(driver: Driver, benchmark: Benchmark, tasks: list[VideoTask], done: dict[str, list | None],
                   writer: PredictionWriter, progress=None) -> None:
    """Answer every question of `tasks` not in `done` (qid -> the `video_stamp` it was answered from), or answered
    from a video that changed since; an unreadable video fails its remaining questions."""
    for task in tasks:
        stamp = None if task.error else video_stamp(task.path)
        todo = [q for q in task.questions if q.qid not in done or done[q.qid] != stamp]
        changed = sum(q.qid in done for q in todo)
        if changed:
            log.warning("%s: the video changed since %d of its questions were answered; answering them again",
                        task.key, changed)
        written: set[str] = set()
        try:
            for rec in driver.answer_video(benchmark, task, todo):
                writer.write({**rec, "video_stamp": stamp, "written_at": round(time.time(), 6)})
                written.add(rec["id"])
        except (InputError, torch.cuda.OutOfMemoryError) as err:
            message = str(err).splitlines()[0]
            log.warning("%s: %d questions failed: %s", task.key, len(todo) - len(written), message)
            for q in todo:
                if q.qid not in written:
                    writer.write(benchmark.record(q, None, driver.protocol.name, error=message))
            if isinstance(err, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
        if progress is not None:
            progress.update(1)


def record_settings(out: Path, settings: dict, rank: int, world: int) -> None:
    """Rank 0 records the settings (or refuses a folder made otherwise), then the others check, before any
    prediction is written."""
    if rank == 0:
        check_settings(out, settings)
    barrier(world)
    if rank != 0:
        check_settings(out, settings, write=False)


def answer_shard(driver: Driver, benchmark: Benchmark, tasks: list[VideoTask], done: dict, out: Path,
                 rank: int) -> None:
    """This process's videos answered into predictions.rank{R}.jsonl, and its work into .work.rank{R}.json."""
    from tqdm import tqdm

    writer = PredictionWriter(out / f"predictions.rank{rank}.jsonl")
    start = time.perf_counter()
    try:
        with tqdm(total=len(tasks), unit="video", disable=rank != 0, file=sys.stderr) as progress:
            evaluate_tasks(driver, benchmark, tasks, done, writer, progress)
    finally:
        writer.close()
    work = {"frames_encoded": driver.frames_encoded, "questions_answered": writer.count,
            "seconds": round(time.perf_counter() - start, 3), "late_asks": driver.late_asks,
            **({"frames_dropped": driver.frames_dropped} if driver.protocol.paced else {})}
    log.info("rank %d: %d frames encoded in %.1f s", rank, work["frames_encoded"], work["seconds"])
    if driver.late_asks:
        log.warning("rank %d: %d asks came after their video's end; answered at its end", rank, driver.late_asks)
    (out / f".work.rank{rank}.json").write_text(json.dumps(work))


def run(request: EvalRequest) -> dict | None:
    """The evaluation of checked options (`check_eval_args`); returns the results table on rank 0."""
    rank, world, local_rank = init_distributed()
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="%(message)s")
    r = request
    out = r.output
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"--output-dir {out}: cannot create it ({err.strerror})") from None
    benchmark = r.bench()
    tasks = benchmark.load(r.anno_dir, r.roots, r.chosen)
    if not tasks:
        raise InputError(f"{r.anno_dir}: no questions to evaluate in subsets {', '.join(r.chosen)}")
    questions = questions_hash(tasks)  # of every question, --max-videos or not
    if r.max_videos is not None:
        tasks = tasks[: r.max_videos]

    from ..chat import default_device

    device = r.model.device or default_device(local_rank)
    # On a GPU every vision-tower call gets exactly `batch_size` frames, so that stream and recompute (and any
    # batching) hold bit-identical memories in bf16; on the CPU the features are batch-independent already.
    engine = r.model.load(device=device, fixed_batch=r.batch_size if device.startswith("cuda") else None)
    config = r.protocol_config(engine.config)  # the model's memory and frame rate where the options leave them
    protocol = protocol_of(config)
    meta = {"benchmark": benchmark.name, "model": r.model.model, "anno_dir": str(r.anno_dir), "roots": r.roots, "subsets": list(r.chosen),
            "protocol": protocol_record(protocol), "world_size": world}
    settings = {**answer_settings(r.model.model, protocol, r.model.dtype), "questions": questions,
                "data_roots": {name: str(Path(root).resolve()) for name, root in sorted(r.roots.items())}}
    record_settings(out, settings, rank, world)
    if rank == 0:
        (out / "config.json").write_text(json.dumps({**asdict(r), "resolved": meta}, indent=2, default=str))

    required = record_keys(benchmark, tasks, protocol.name)
    done = {qid: rec.get("video_stamp") for qid, rec in read_predictions(out, rank == 0, required).items()
            if rec["status"] == "ok"}
    driver = Driver(engine, protocol, decoder=r.decoder)
    mine = shard(tasks, world, protocol)[rank]
    n_questions = sum(len(t.questions) for t in tasks)
    log.info("%s %s: %d videos, %d questions (%d done before), %d processes", benchmark.title, config.name, len(tasks),
             n_questions, len(done), world)

    answer_shard(driver, benchmark, mine, done, out, rank)
    barrier(world)
    table = None
    if rank == 0:
        meta["work"] = total_work(out, world)
        if r.compare is not None:
            meta["compare"] = compared(r.compare, benchmark)
        table = merge(out, tasks, meta, benchmark, required)
        log.info("%s, %s: %s; results in %s", benchmark.title, protocol_line(meta), benchmark.summary(table), out)
    barrier(world)
    if world > 1:
        torch.distributed.destroy_process_group()
    return table


def compared(folder: str, benchmark: Benchmark) -> dict:
    """What the results page shows of the run `--compare` names: its folder, protocol and score."""
    results = compared_results(folder, benchmark)
    meta = results.pop("meta", {})
    return {"dir": folder, "protocol": protocol_line(meta) or "compared run", "summary": benchmark.summary(results)}


def exit_status(table: dict | None, allow_failures: bool) -> int:
    """0, or 1 when questions failed (printing how many and the first reasons) unless failures are allowed."""
    failed = (table or {}).get("failed", [])
    if not failed:
        return 0
    reasons = "; ".join(f"{f['id']} ({f['video']}): {f['error']}" for f in failed[:3])
    level = "warning" if allow_failures else "error"
    print(f"{level}: {len(failed)} of {table['overall']['total']} questions failed (scored wrong; listed in "
          f"results.md); first: {reasons}", file=sys.stderr)
    return 0 if allow_failures else 1


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m videochat_online.eval", description="Evaluation on a benchmark (OVBench, ...)")
    add_eval_args(parser)
    args = parser.parse_args(argv)

    def evaluate() -> int:
        request = check_eval_args(args)
        return exit_status(run(request), request.allow_failures)

    return run_main(evaluate)
