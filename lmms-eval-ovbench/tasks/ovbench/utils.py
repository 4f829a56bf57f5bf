"""OVBench for lmms-eval: documents, visual input, prompt and scoring, the project's own
(`videochat_online.eval`), so that lmms-eval and `videochat-online eval` agree question for question.
Videos are found through OVBENCH_{AVA,COIN,HIREST,TAO}_ROOT; the visual inputs ("frames", "clip") are
described in lmms-eval-ovbench/README.md.
"""

from lmms_eval_ovbench.documents import answered, frames, root_of
from videochat_online.eval.annotations import OVBenchError
from videochat_online.eval.benchmarks import BENCHMARKS
from videochat_online.eval.ovbench import Question, format_question, question_from_entry, video_path
from videochat_online.eval.results import macro_average

ANSWER_TYPES = ("PastMemory", "SpatialPerception", "TemporalPerception", "SpatioTemporalPerception",
                "FuturePrediction", "Hallucination")
# The task types each subset asks about (the metric lists of ovbench_{subset}.yaml).
SUBSET_TYPES = {"ava": ANSWER_TYPES, "tao": ANSWER_TYPES,
                "coin": ("PastMemory", "TemporalPerception", "FuturePrediction", "Hallucination"),
                "hirest": ("PastMemory", "TemporalPerception", "FuturePrediction", "Hallucination"),
                "synth": ("PastMemory", "SpatialPerception", "TemporalPerception", "FuturePrediction", "Hallucination")}


def _process(subset: str):
    def process_docs(dataset):
        # The video root is checked when a question's video is first needed (`root_of`): an error here
        # would reach the user only through lmms-eval's download retries.
        return dataset.map(lambda doc, i: {"subset": subset, "qid": f"{subset}/{i}"}, with_indices=True)

    return process_docs


process_ava, process_coin, process_hirest, process_tao, process_synth = (
    _process(s) for s in ("ava", "coin", "hirest", "tao", "synth"))


def question_of(doc: dict) -> Question:
    subset, position = doc["qid"].split("/")
    return question_from_entry(doc, subset, int(position))


def ovbench_doc_to_visual(doc: dict, lmms_eval_specific_kwargs: dict):
    q = question_of(doc)
    path, refused = video_path(root_of(f"OVBENCH_{q.subset.upper()}_ROOT", f"OVBench's {q.subset} videos"), q)
    if refused:
        raise OVBenchError(refused)
    if lmms_eval_specific_kwargs.get("visual") == "clip":
        subset, position = doc["qid"].split("/")
        return [{"benchmark": "ovbench", "video": str(path), "start": q.start, "end": q.end,
                 "folder_fps": q.folder_fps, "question": doc, "subset": subset, "position": int(position)}]
    return frames(path, q.start, q.end, lmms_eval_specific_kwargs, q.folder_fps)


def ovbench_doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    kwargs = lmms_eval_specific_kwargs or {}
    return kwargs.get("pre_prompt", "") + format_question(question_of(doc)) + kwargs.get("post_prompt", "")


def ovbench_doc_to_target(doc: dict) -> str:
    return question_of(doc).answer_letter


def ovbench_process_results(doc: dict, results: list[str]) -> dict:
    """The same prediction line as `videochat-online eval` writes (scored by the benchmark's own rules)."""
    q = question_of(doc)
    said, failed = answered(results[0])  # the model could not answer: scored wrong, counted
    record = BENCHMARKS.get("ovbench")().record(q, said, "lmms-eval", error=results[0] if failed else None)
    return {"ovbench_overall": record, **{f"ovbench_{t}": record for t in SUBSET_TYPES[q.subset]},
            "ovbench_macro": record, "ovbench_published_rule": record, "ovbench_failed": int(failed)}


def _accuracy(records: list[dict], field: str = "correct") -> float:
    return 100.0 * sum(r[field] for r in records) / len(records) if records else float("nan")


def aggregate_overall(records: list[dict]) -> float:
    return _accuracy(records)


def aggregate_macro(records: list[dict]) -> float:
    """The published "Avg": the mean over (answer_type, sub_answer_type) cells of each cell's accuracy."""
    return macro_average(records)


def aggregate_published_rule(records: list[dict]) -> float:
    """Accuracy over questions under the published `mcq_acc` scoring rule."""
    return _accuracy(records, "published_correct")


def aggregate_failed(flags: list[int]) -> int:
    """How many questions the model could not answer (`lmms_eval_ovbench.check` fails a run with any)."""
    return int(sum(flags))


def _aggregate_type(answer_type: str):
    def aggregate(records: list[dict]) -> float:
        return _accuracy([r for r in records if r["answer_type"] == answer_type])

    aggregate.__name__ = f"aggregate_{answer_type}"
    return aggregate


(aggregate_PastMemory, aggregate_SpatialPerception, aggregate_TemporalPerception, aggregate_SpatioTemporalPerception,
 aggregate_FuturePrediction, aggregate_Hallucination) = (_aggregate_type(t) for t in ANSWER_TYPES)
