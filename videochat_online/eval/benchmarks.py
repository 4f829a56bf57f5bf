"""Benchmarks as plug-ins: what `videochat-online eval --benchmark NAME` needs to know of one.

A benchmark gives its questions grouped per video with their times (`load`), puts a question to the model
(`question_text`, under a preset and a protocol), scores a reply into a prediction line (`record`), orders
the lines as its files do (`order`) and writes its results (`write_results`: headline and tables).
`@register_benchmark` makes one known by name; OVBench and the synthetic world's benchmark are the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..conversation import compact_prompt
from .ovbench import SUBSETS, SYNTHETIC_SUBSET, SYSTEM_MESSAGE, Question, VideoTask, load_ovbench
from .presets import Preset
from .results import write_results
from .scoring import extract_option, published_choice

if TYPE_CHECKING:
    from ..chat import Reply
    from ..memory import MemoryFrame


class Benchmark:
    name: ClassVar[str]  # --benchmark
    title: ClassVar[str]  # of its results
    subsets: ClassVar[tuple[str, ...]]  # every subset it has, in report order
    default_subsets: ClassVar[tuple[str, ...]]  # those evaluated unless --subsets says otherwise
    system_message: ClassVar[str] = SYSTEM_MESSAGE

    def load(self, anno_dir: str | Path, roots: dict[str, str], subsets: Sequence[str]) -> list[VideoTask]:
        return load_ovbench(anno_dir, roots, tuple(subsets))

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
                "published_correct": published == q.answer_letter, "reply": text, "protocol": protocol,
                "frames": [[f.index, f.timestamp, f.num_tokens] for f in held],
                "prompt": None if reply is None else compact_prompt(reply.prompt),
                "status": "failed" if error else "ok", "error": error}

    def order(self, qid: str) -> tuple:
        """Where a prediction line goes in predictions.jsonl: subset by subset, each in its file's order."""
        subset, position = qid.split("/")
        return self.subsets.index(subset), int(position)

    def write_results(self, out: Path, records: list[dict], meta: dict) -> dict:
        return write_results(out, records, meta, title=self.title)


BENCHMARKS: dict[str, Benchmark] = {}


def register_benchmark(cls: type[Benchmark]) -> type[Benchmark]:
    BENCHMARKS[cls.name] = cls()
    return cls


@register_benchmark
class OVBench(Benchmark):
    """OVBench: AVA and TAO frame folders, COIN and HiREST video files; macro-average headline."""

    name, title, subsets, default_subsets = "ovbench", "OVBench", SUBSETS, SUBSETS


@register_benchmark
class SyntheticWorld(Benchmark):
    """The synthetic world's test split (`videochat_online.synthetic`), in OVBench's format."""

    name, title, subsets, default_subsets = "synth", "Synthetic world", (SYNTHETIC_SUBSET,), (SYNTHETIC_SUBSET,)
