"""OVO-Bench's multiple-choice tasks (backward tracing and real-time perception) and StreamingBench's real-time
questions for lmms-eval, with the project's official prompts and both scoring rules
(`videochat_online.eval.ovo_bench`, `.streamingbench`), so that lmms-eval and `videochat-online eval --benchmark`
agree question for question. The `videochat_online` model gets the question itself ("clip") and watches its
video once as a stream; every other model gets frames spread over [0, question time], nothing after it.
"""

import datasets

from lmms_eval_ovbench.documents import answered, frames, root_of
from videochat_online.eval import ovo_bench, streamingbench
from videochat_online.eval.annotations import OVBenchError, confined

MC_TASKS = ovo_bench.CATEGORIES["backward"] + ovo_bench.CATEGORIES["realtime"]


def doc_to_target(doc: dict) -> str:
    return doc["target"]


def aggregate_failed(flags: list[int]) -> int:
    return int(sum(flags))


# OVO-Bench
def ovo_query(doc: dict) -> ovo_bench.Query:
    row = {k: v for k, v in doc.items() if v is not None and k != "target"}  # the json loader fills absent keys
    return ovo_bench.queries(row)[0]


def ovo_process_docs(dataset):
    return dataset.filter(lambda row: row["task"] in MC_TASKS).map(
        lambda row: {"target": ovo_bench.LETTERS[row["gt"]]})


def ovo_doc_to_visual(doc: dict, lmms_eval_specific_kwargs: dict):
    q = ovo_query(doc)
    path = confined(root_of("OVO_BENCH_ROOT", "OVO-Bench's videos"), q.video)
    if lmms_eval_specific_kwargs.get("visual") == "clip":
        return [{"benchmark": "ovo-bench", "video": str(path), "row": q.row}]
    return frames(path, 0.0, q.end, lmms_eval_specific_kwargs)


def ovo_doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    return ovo_bench.prompt(ovo_query(doc))


def ovo_process_results(doc: dict, results: list[str]) -> dict:
    said, failed = answered(results[0])
    record = ovo_bench.line(ovo_query(doc), said, "lmms-eval", error=results[0] if failed else None)
    return {"ovo_bench_published": record, "ovo_bench_strict": record, "ovo_bench_failed": int(failed)}


def ovo_aggregate_published(records: list[dict]) -> float:
    """The mean of the backward and real-time categories, each the mean of its tasks (published rule)."""
    return ovo_bench.table(records)["overall"]["published"]


def ovo_aggregate_strict(records: list[dict]) -> float:
    return ovo_bench.table(records)["overall"]["strict"]


# StreamingBench, real-time visual understanding
def sb_process_docs(dataset):
    """One document per question, numbered as `videochat-online eval` numbers them (real/{position})."""
    rows = []
    for record in dataset:
        for e in record["questions"]:
            rows.append({"position": len(rows), "video_path": record["video_path"], "entry": e, "target": e["answer"]})
    return datasets.Dataset.from_list(rows)


def sb_query(doc: dict) -> streamingbench.Query:
    return streamingbench.StreamingBench().query(doc)


def sb_doc_to_visual(doc: dict, lmms_eval_specific_kwargs: dict):
    q = sb_query(doc)
    path, refused = streamingbench.video_path(root_of("STREAMINGBENCH_ROOT", "StreamingBench's videos"), q.video)
    if refused:
        raise OVBenchError(refused)
    if lmms_eval_specific_kwargs.get("visual") == "clip":
        return [{"benchmark": "streamingbench", "video": str(path), "position": doc["position"],
                 "video_path": q.video, "entry": q.entry}]
    return frames(path, 0.0, q.asked, lmms_eval_specific_kwargs)


def sb_doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    e = doc["entry"]
    return streamingbench.REAL_PROMPT.format(e["question"], *streamingbench.lettered(e["options"]))


def sb_process_results(doc: dict, results: list[str]) -> dict:
    said, failed = answered(results[0])
    record = streamingbench.choice_line(sb_query(doc), said, "lmms-eval", error=results[0] if failed else None)
    return {"streamingbench_published": record, "streamingbench_strict": record, "streamingbench_failed": int(failed)}


def sb_aggregate_published(records: list[dict]) -> float:
    """Accuracy over the questions with a reply, as published."""
    return streamingbench.table(records)["subsets"]["real"]["all"]["published"]


def sb_aggregate_strict(records: list[dict]) -> float:
    return streamingbench.table(records)["subsets"]["real"]["all"]["strict"]
