"""Benchmarks as plug-ins: what `videochat-online eval --benchmark NAME` and the lmms-eval model need to know of one
(docs/design.md, "Extending").

A benchmark gives its questions grouped per video with their times (`load`), and for each video the scripts that
ask them along the stream (`scripts`, played by `driver.Driver` under a protocol): an OVBench question is one ask, a
proactive one polls. It writes the prediction line of a question it could not answer (`record`), orders the lines as
its files do (`order`), scores them (`table`) and lays the scores out (`markdown`, `rows`, `charts`), and turns an
lmms-eval document's clip into its question (`query`). Each lives in its own module beside its data code and
registers itself (`@BENCHMARKS.register`); one of one's own is `--benchmark package.module:Class`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..conversation import compact_prompt
from ..registry import Registry
from .results import bar_chart, insert_run_line, realtime_markdown, realtime_table, write_csv

if TYPE_CHECKING:
    from .driver import Answer
    from .protocols import Protocol

BENCHMARKS = Registry("benchmark", "--benchmark", "videochat_online.benchmarks",
                      builtin=("videochat_online.eval.ovbench", "videochat_online.eval.ovo_bench",
                               "videochat_online.eval.streamingbench"))
DEFAULT_BENCHMARK = "ovbench"


@dataclass
class VideoTask:
    """One video and its questions, in time order (each has `qid`, `start` and `end`)."""

    subset: str
    video: str
    path: Path
    folder_fps: float | None
    questions: list = field(default_factory=list)
    error: str | None = None  # why its video is not read (a path outside its root): its questions fail

    @property
    def key(self) -> str:
        return f"{self.subset}/{self.video}"

    @property
    def watch_seconds(self) -> float:
        """How far a stream watches: up to the last question."""
        return max(q.end for q in self.questions)


class Benchmark:
    name: ClassVar[str]  # --benchmark
    title: ClassVar[str]  # of its results
    subsets: ClassVar[tuple[str, ...]]  # every subset it has, in report order
    default_subsets: ClassVar[tuple[str, ...]]  # those evaluated unless --subsets says otherwise
    system_message: ClassVar[str | None] = None  # None: the model's own
    roots: ClassVar[tuple[str, ...] | None] = None  # the --data-root names (None: the subsets)
    excluded_protocols: ClassVar[tuple[str, ...]] = ()  # protocols that make no sense here
    default_preset: ClassVar[str]  # a row of `presets.PRESETS`
    annotations: ClassVar[tuple | None] = None  # files the fetch tool gets: (GitHub repository, commit, folder,
    # {file: sha256})
    generates_only: ClassVar[bool] = False  # its prompts ask for a free reply: no --answer-by likelihood
    csv_columns: ClassVar[list[str]]
    chart_key: ClassVar[str]  # the score the charts show

    # Questions
    def load(self, anno_dir: str | Path, roots: dict[str, str], subsets: Sequence[str]) -> list[VideoTask]:
        raise NotImplementedError

    def question_file(self, subset: str) -> str:
        """The file of `--anno-dir` that holds a subset's questions."""
        return f"{subset}.json"

    def scripts(self, task: VideoTask, todo: set[str], protocol: Protocol) -> list[tuple]:
        """(script, (first, last ask time)) for the questions of `task` in `todo`."""
        raise NotImplementedError

    def query(self, clip: dict):
        """The question an lmms-eval document's clip (what its task's `doc_to_visual` gives) carries."""
        raise NotImplementedError

    def protocols(self) -> list[str]:
        from .presets import PROTOCOLS

        return [name for name in PROTOCOLS.names() if name not in self.excluded_protocols]

    # Prediction lines
    def record(self, q, answer: Answer | None, protocol: str, error: str | None = None) -> dict:
        """The prediction line of a question, here one the model could not answer (`error`); the scripts write
        the others."""
        raise NotImplementedError

    def order(self, qid: str) -> tuple:
        """Where a prediction line goes in predictions.jsonl: subset by subset, each in its file's order."""
        subset, position = qid.split("/")
        return self.subsets.index(subset), int(position)

    # Results
    def table(self, records: list[dict]) -> dict:
        raise NotImplementedError

    def markdown(self, table: dict) -> str:
        raise NotImplementedError

    def rows(self, table: dict) -> list[dict]:
        raise NotImplementedError

    def charts(self, table: dict) -> dict[str, tuple[str, dict]]:
        """charts/{name}.png: (title, cells)."""
        return {}

    def summary(self, table: dict) -> str:
        """The headline, one line for the log."""
        raise NotImplementedError

    def write_results(self, out: Path, records: list[dict], meta: dict) -> dict:
        """results.{json,csv,md} and charts/*.png for these prediction lines (the failed ones listed); returns the
        table."""
        table = self.table(records)
        table.setdefault("failed", [{"id": r["id"], "video": r["video"], "error": r["error"]} for r in records
                                    if r["status"] == "failed"])
        protocol = meta.get("protocol") or {}
        paced = realtime_table(records, protocol["fps"] * protocol["speed"] if protocol.get("speed") else None)
        if paced is not None:
            table["pace"] = paced
        (out / "results.json").write_text(json.dumps({"meta": meta, **table}, indent=2, ensure_ascii=False))
        write_csv(out / "results.csv", self.rows(table), self.csv_columns)
        failures = [f"- {f['id']} ({f['video']}): {f['error']}" for f in table["failed"]]
        page = insert_run_line(self.markdown(table), meta)
        if paced is not None:
            page += "\n" + realtime_markdown(paced, self.summary(table), meta.get("compare"))
        (out / "results.md").write_text(page + (
            "\n## Failed questions\n\n" + "\n".join(failures) + "\n" if failures else ""))
        (out / "charts").mkdir(exist_ok=True)
        for name, (title, cells) in self.charts(table).items():
            bar_chart(out / "charts" / f"{name}.png", title, cells, key=self.chart_key)
        return table


def prediction_line(qid: str, subset: str, video: str, time: float, said: Answer | None, protocol: str,
                    error: str | None = None, **fields) -> dict:
    """A prediction line: the question, the benchmark's own fields (answer, verdicts), its reply, what the model saw
    (frames held, the exact prompt, each run of n `<IMG_CONTEXT>` written `<IMG_CONTEXT>*n`;
    `videochat_online.conversation.expand_prompt` restores it), whether it failed, and under the real-time protocol
    when and how fast it was answered (`pace`)."""
    return {"id": qid, "subset": subset, "video": video, "time": time, **fields,
            "reply": None if said is None else said.reply.text, "protocol": protocol,
            "frames": [] if said is None else [[f.index, f.timestamp, f.num_tokens] for f in said.held],
            "prompt": None if said is None else compact_prompt(said.reply.prompt),
            "status": "failed" if error else "ok", "error": error,
            **({"pace": said.pace} if said is not None and said.pace else {})}

