"""Benchmarks as plug-ins: what `videochat-online eval --benchmark NAME` needs to know of one.

A benchmark gives its questions grouped per video with their times (`load`), puts a question to the model
(`question_text`, under a preset and a protocol), scores a reply into a prediction line (`record`), orders
the lines as its files do (`order`) and writes its results (`write_results`: headline and tables). A scripted
benchmark (OVO-Bench, StreamingBench) instead gives, per video, scripts that ask along the stream (`scripts`,
run by `driver.Driver`): probes, polls and sequential turns. `@register_benchmark` makes one known by name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..conversation import compact_prompt
from . import ovo_bench, streamingbench
from .driver import SCRIPTED_PROTOCOLS
from .ovbench import SUBSETS, SYNTHETIC_SUBSET, SYSTEM_MESSAGE, Question, VideoTask, load_ovbench
from .presets import PROTOCOLS, Preset
from .results import bar_chart, insert_run_line, write_csv, write_results
from .scoring import extract_option, published_choice, self_contradicting

if TYPE_CHECKING:
    from ..chat import Reply
    from ..memory import MemoryFrame


class Benchmark:
    name: ClassVar[str]  # --benchmark
    title: ClassVar[str]  # of its results
    subsets: ClassVar[tuple[str, ...]]  # every subset it has, in report order
    default_subsets: ClassVar[tuple[str, ...]]  # those evaluated unless --subsets says otherwise
    system_message: ClassVar[str | None] = SYSTEM_MESSAGE  # None: the model's own
    roots: ClassVar[tuple[str, ...] | None] = None  # the --data-root names (None: the subsets)
    protocols: ClassVar[tuple[str, ...]] = PROTOCOLS
    default_preset: ClassVar[str] = "published"
    window_seconds: ClassVar[float] = 32.0  # the window protocol's, unless --window-seconds says otherwise
    scripted: ClassVar[bool] = False

    def load(self, anno_dir: str | Path, roots: dict[str, str], subsets: Sequence[str]) -> list[VideoTask]:
        return load_ovbench(anno_dir, roots, tuple(subsets))

    def question_file(self, subset: str) -> str:
        """The file of `--anno-dir` that holds a subset's questions."""
        return f"{subset}.json"

    def question_text(self, q: Question, preset: Preset, protocol: str) -> str:
        return preset.question(q, protocol)

    def record(self, q: Question, reply: Reply | None, held: Sequence[MemoryFrame], protocol: str,
               error: str | None = None) -> dict:
        """One prediction line: the question, what the model saw (frames held, exact prompt), its reply and the
        choice under both scoring rules. `prompt` writes each run of n `<IMG_CONTEXT>` as `<IMG_CONTEXT>*n`
        (`videochat_online.conversation.expand_prompt` restores it)."""
        text = None if reply is None else reply.text
        prediction = None if text is None else extract_option(text, q.candidates)
        published = None if text is None else published_choice(text)
        return {"id": q.qid, "subset": q.subset, "video": q.video, "time": q.end, "answer_type": q.answer_type,
                "sub_answer_type": q.sub_answer_type, "answer": q.answer_letter, "prediction": prediction,
                "correct": prediction == q.answer_letter, "published_choice": published,
                "published_correct": published == q.answer_letter,
                "self_contradicting": text is not None and self_contradicting(text, q.candidates),
                "reply": text, "protocol": protocol,
                "frames": [[f.index, f.timestamp, f.num_tokens] for f in held],
                "prompt": None if reply is None else compact_prompt(reply.prompt),
                "status": "failed" if error else "ok", "error": error}

    def order(self, qid: str) -> tuple:
        """Where a prediction line goes in predictions.jsonl: subset by subset, each in its file's order."""
        subset, position = qid.split("/")
        return self.subsets.index(subset), int(position)

    def write_results(self, out: Path, records: list[dict], meta: dict) -> dict:
        return write_results(out, records, meta, title=self.title)

    def summary(self, table: dict) -> str:
        """The headline, one line for the log."""
        head, overall = table["headline"], table["overall"]
        return (f"macro average {head['macro']:.2f} (published rule {head['macro_published_rule']:.2f}); accuracy "
                f"{overall['accuracy']:.2f}% ({overall['correct']}/{overall['total']}, {overall['failed']} failed)")


BENCHMARKS: dict[str, Benchmark] = {}


def register_benchmark(cls: type[Benchmark]) -> type[Benchmark]:
    BENCHMARKS[cls.name] = cls()
    return cls


@register_benchmark
class OVBench(Benchmark):
    """OVBench: AVA and TAO frame folders, COIN and HiREST video files; macro-average headline."""

    name, title, subsets, default_subsets = "ovbench", "OVBench", SUBSETS, SUBSETS
    protocols = ("stream", "window", "uniform", "recompute")


@register_benchmark
class SyntheticWorld(Benchmark):
    """The synthetic world's test split (`videochat_online.synthetic`), in OVBench's format."""

    name, title, subsets, default_subsets = "synth", "Synthetic world", (SYNTHETIC_SUBSET,), (SYNTHETIC_SUBSET,)
    protocols = OVBench.protocols


class ScriptedBenchmark(Benchmark):
    """A benchmark whose videos are answered by scripts along one stream (`driver.py`), with its own prompts,
    scoring and tables (`module`: ovo_bench or streamingbench)."""

    module: ClassVar
    system_message, roots, protocols, default_preset, scripted = None, ("videos",), SCRIPTED_PROTOCOLS, "project", True
    window_seconds = 60.0  # StreamingBench's leaderboard setting, used for both

    def load(self, anno_dir: str | Path, roots: dict[str, str], subsets: Sequence[str]) -> list[VideoTask]:
        return self.module.load(anno_dir, roots.get("videos"), tuple(subsets))

    def record(self, q, reply, held, protocol: str, error: str | None = None) -> dict:
        """The prediction line of a query the model could not answer (`error`); answers come from `scripts`."""
        return self.failed(q, protocol, error)

    def order(self, qid: str) -> tuple:
        return self.module.order(qid)

    def write_results(self, out: Path, records: list[dict], meta: dict) -> dict:
        scores = self.module.table(records)
        table = {"meta": meta, **scores, "overall": {**scores.get("overall", {}), "total": len(records)},
                 "failed": [{"id": r["id"], "video": r["video"], "error": r["error"]} for r in records
                            if r["status"] == "failed"]}
        (out / "results.json").write_text(json.dumps(table, indent=2, ensure_ascii=False))
        write_csv(out / "results.csv", self.module.rows(scores), self.module.CSV_COLUMNS)
        failures = [f"- {f['id']} ({f['video']}): {f['error']}" for f in table["failed"]]
        (out / "results.md").write_text(insert_run_line(self.module.markdown(table, self.title), meta)
                                        + ("\n## Failed queries\n\n" + "\n".join(failures) + "\n" if failures else ""))
        (out / "charts").mkdir(exist_ok=True)
        for name, (title, cells) in self.module.charts(scores).items():
            bar_chart(out / "charts" / f"{name}.png", title, cells, key="published")
        return table


@register_benchmark
class OVOBench(ScriptedBenchmark):
    """OVO-Bench: 12 tasks, backward / real-time queries and forward probes along one stream per video."""

    name, title, module = "ovo-bench", "OVO-Bench", ovo_bench
    subsets = default_subsets = ovo_bench.TASKS

    def question_file(self, subset: str) -> str:
        return ovo_bench.FILE

    def scripts(self, task: VideoTask, todo: set[str], protocol: str) -> list:
        return [(ovo_bench.script(q, protocol), (q.end, q.end)) for q in task.questions if q.qid in todo]

    def failed(self, q, protocol: str, error: str | None) -> dict:
        return ovo_bench.line(q, None, protocol, error)

    def summary(self, table: dict) -> str:
        o = table["overall"]
        return f"overall {o['published']:.2f} (published rule; strict {o['strict']:.2f})"


@register_benchmark
class StreamingBench(ScriptedBenchmark):
    """StreamingBench: real-time, sequential QA and proactive output along one stream per video (no audio)."""

    name, title, module = "streamingbench", "StreamingBench", streamingbench
    subsets = streamingbench.SUBSETS
    default_subsets = ("real", "sqa", "proactive_50")

    def question_file(self, subset: str) -> str:
        return streamingbench.FILES[subset]

    def scripts(self, task: VideoTask, todo: set[str], protocol: str) -> list:
        return streamingbench.scripts(task, todo, protocol)

    def failed(self, q, protocol: str, error: str | None) -> dict:
        return streamingbench.failed_line(q, protocol, error)

    def summary(self, table: dict) -> str:
        return "; ".join(f"{name} {cells['all']['published']:.2f} (strict {cells['all']['strict']:.2f})"
                         for name, cells in table["subsets"].items())
