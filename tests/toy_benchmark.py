"""A toy benchmark with its own annotation format, written as a user adds one: this file, nothing else
(`--benchmark toy_benchmark:YesNo`).

`toy.jsonl` holds one question per line: {"clip": "a.mp4", "at": 3.5, "ask": "Is the ball left?", "truth": "yes"};
each is asked at `at` seconds of its clip, and a reply is right when its first word is the truth.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from videochat_online.eval.annotations import OVBenchError
from videochat_online.eval.benchmarks import Benchmark, VideoTask, prediction_line
from videochat_online.eval.driver import Ask

FILE = "toy.jsonl"


@dataclass
class Question:
    qid: str
    row: dict
    end: float
    start: float = 0.0


class YesNo(Benchmark):
    """yes/no questions in a JSON-lines file (a test benchmark)"""

    name, title = "toy-yes-no", "Toy yes/no"
    subsets = default_subsets = ("all",)
    roots, default_preset, generates_only = ("videos",), "project", True
    csv_columns, chart_key = ["name", "accuracy", "total"], "accuracy"

    def question_file(self, subset):
        return FILE

    def load(self, anno_dir, roots, subsets):
        file, root = Path(anno_dir) / FILE, Path(roots.get("videos", "<videos root not set>"))
        tasks = {}
        for i, line in enumerate(file.read_text().splitlines()):
            row = json.loads(line)
            if not isinstance(row.get("at"), (int, float)):
                raise OVBenchError(f"{file}: line {i + 1}: 'at' must be a number of seconds")
            task = tasks.setdefault(row["clip"], VideoTask("all", row["clip"], root / row["clip"], None))
            task.questions.append(Question(f"all/{i}", row, float(row["at"])))
        return list(tasks.values())

    def scripts(self, task, todo, protocol):
        return [(self._script(q, protocol.name), (q.end, q.end)) for q in task.questions if q.qid in todo]

    def _script(self, q, protocol):
        answer = yield Ask(q.end, f"{q.row['ask']} Answer yes or no.")
        yield self.record(q, answer, protocol)

    def query(self, clip):
        return Question(clip["qid"], clip["row"], float(clip["row"]["at"]))

    def record(self, q, answer, protocol, error=None):
        words = (answer.reply.text.strip().lower().split() or [""]) if answer is not None else [""]
        return prediction_line(q.qid, "all", q.row["clip"], q.end, answer, protocol, error, answer=q.row["truth"],
                               correct=words[0].strip(".,!") == q.row["truth"])

    def table(self, records):
        right = sum(r["correct"] for r in records)
        return {"overall": {"accuracy": round(100.0 * right / len(records), 2), "total": len(records)}}

    def markdown(self, table):
        return f"# {self.title}\n\nAccuracy {table['overall']['accuracy']:.2f}\n"

    def rows(self, table):
        return [{"name": "all", **table["overall"]}]

    def summary(self, table):
        return f"accuracy {table['overall']['accuracy']:.2f}"
