"""OVBench as data and as a benchmark: question files (one JSON list per subset; AVA and TAO frame folders, COIN and
HiREST video files), videos grouped with their questions, the prompt, and each question a script of one ask at its
`end` (it sees only frames up to it). The synthetic world's test split is a second benchmark in this format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..data.paths import inside
from . import results
from .annotations import OVBenchError, check_time
from .benchmarks import BENCHMARKS, Benchmark, VideoTask, prediction_line
from .driver import Answer, Ask
from .presets import DEFAULT_PRESET
from .scoring import LETTERS, extract_option, published_choice, self_contradicting

SUBSETS = ("ava", "coin", "hirest", "tao")  # OVBench's four, evaluated by default
SYNTHETIC_SUBSET = "synth"  # the synthetic world's test split (videochat_online.synthetic), video files
KNOWN_SUBSETS = SUBSETS + (SYNTHETIC_SUBSET,)
FRAME_FOLDER_SUBSETS = ("ava", "tao")
AVA_CLIP_START = 900.0  # AVA's `middle_frame_timestamp` counts from the movie start; its clips start at 900 s

SYSTEM_MESSAGE = (
    "Carefully watch the video and pay attention to the cause and sequence of events, the detail and movement of "
    "objects, and the action and pose of persons. Based on your observations, select the best option that "
    "accurately addresses the question.\n"
)
_REQUIRED = {"video": str, "start": (int, float), "end": (int, float), "middle_frame_timestamp": (int, float),
             "question": str, "candidates": list, "answer": str, "answer_type": str, "sub_answer_type": str}


@dataclass
class Question:
    qid: str  # "{subset}/{position in its file}"
    subset: str
    video: str
    start: float
    end: float  # the question is asked here
    reference_time: float  # the moment the question is about, in seconds of the video
    asked_time: float  # `middle_frame_timestamp` as the file has it (AVA: absolute, 900 s + reference_time)
    question: str
    candidates: list[str]
    answer: str
    answer_type: str
    sub_answer_type: str
    folder_fps: float | None = None  # frame-folder subsets
    image_file: str | None = None  # TAO: the frame at the question time

    @property
    def answer_letter(self) -> str:
        return LETTERS[self.candidates.index(self.answer)]


def _check_entry(entry, file: Path, i: int, subset: str) -> None:
    where = f"{file}: entry {i}"
    if not isinstance(entry, dict):
        raise OVBenchError(f"{where}: expected an object, got {type(entry).__name__}")
    if isinstance(entry.get("video"), str):
        where += f" (video {entry['video']})"
    for key, kind in _REQUIRED.items():
        if key not in entry:
            raise OVBenchError(f"{where}: missing '{key}'")
        if not isinstance(entry[key], kind) or isinstance(entry[key], bool):
            raise OVBenchError(f"{where}: '{key}' has the wrong type ({type(entry[key]).__name__})")
    candidates = entry["candidates"]
    if not 2 <= len(candidates) <= len(LETTERS) or not all(isinstance(c, str) for c in candidates):
        raise OVBenchError(f"{where}: 'candidates' must be 2 to {len(LETTERS)} strings")
    if entry["answer"] not in candidates:
        raise OVBenchError(f"{where}: 'answer' {entry['answer']!r} is not one of the candidates")
    for key in ("start", "end", "middle_frame_timestamp"):
        check_time(entry[key], where, key)
    if not 0 <= entry["start"] <= entry["end"]:
        raise OVBenchError(f"{where}: needs 0 <= start <= end, got start {entry['start']}, end {entry['end']}")
    if subset in FRAME_FOLDER_SUBSETS and not (isinstance(entry.get("fps"), (int, float)) and entry["fps"] > 0):
        raise OVBenchError(f"{where}: a frame-folder subset needs a positive 'fps'")


def load_questions(file: str | Path, subset: str) -> list[Question]:
    """Every question of one subset's file, validated."""
    file = Path(file)
    if subset not in KNOWN_SUBSETS:
        raise OVBenchError(f"{file}: unknown OVBench subset {subset!r}; known: {', '.join(KNOWN_SUBSETS)}")
    if not file.is_file():
        raise OVBenchError(f"{file}: no such question file")
    try:
        entries = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise OVBenchError(f"{file}: not valid JSON ({err})") from None
    if not isinstance(entries, list):
        raise OVBenchError(f"{file}: expected a JSON list of questions")
    questions = []
    for i, entry in enumerate(entries):
        _check_entry(entry, file, i, subset)
        questions.append(question_from_entry(entry, subset, i))
    return questions


def question_from_entry(entry: dict, subset: str, position: int) -> Question:
    """One checked question-file entry (at `position` in its subset's file) as a Question."""
    offset = AVA_CLIP_START if subset == "ava" else 0.0
    return Question(
        qid=f"{subset}/{position}", subset=subset, video=entry["video"], start=float(entry["start"]),
        end=float(entry["end"]), reference_time=float(entry["middle_frame_timestamp"]) - offset,
        asked_time=float(entry["middle_frame_timestamp"]),
        question=entry["question"], candidates=list(entry["candidates"]), answer=entry["answer"],
        answer_type=entry["answer_type"], sub_answer_type=entry["sub_answer_type"],
        folder_fps=float(entry["fps"]) if entry.get("fps") else None, image_file=entry.get("image_file"),
    )


def video_path(root: Path, question: Question) -> tuple[Path, str | None]:
    """Where a question's video lives under its subset root (TAO folders may sit at `image_file`'s folder), and
    why it is refused if it is not inside the root (`annotations.inside`)."""
    direct, refused = inside(root, question.video)
    if question.image_file and not refused and not direct.exists():
        nested, outside = inside(root, str(Path(question.image_file).parent))
        if nested.exists() and not outside:
            return nested, None
    return direct, refused


def load_ovbench(anno_dir: str | Path, roots: dict[str, str | Path] | None = None,
                 subsets: tuple[str, ...] = SUBSETS) -> list[VideoTask]:
    """The subsets' questions grouped by video, each video's in time order. `roots` maps a subset to the folder of
    its videos (without one, the paths point nowhere and reading such a video fails as a missing file)."""
    roots = {k: Path(v) for k, v in (roots or {}).items()}
    tasks: dict[tuple[str, str], VideoTask] = {}
    for subset in subsets:
        for q in load_questions(Path(anno_dir) / f"{subset}.json", subset):
            key = (subset, q.video)
            if key not in tasks:
                root = roots.get(subset, Path(f"<{subset} root not set>"))
                path, refused = video_path(root, q)
                tasks[key] = VideoTask(subset, q.video, path, q.folder_fps, error=refused)
            elif q.folder_fps != tasks[key].folder_fps:
                raise OVBenchError(f"{anno_dir}/{subset}.json: video {q.video} has questions with different fps")
            tasks[key].questions.append(q)
    for task in tasks.values():
        task.questions.sort(key=lambda q: (q.end, q.qid))
    return list(tasks.values())


# Prompt and scoring (pure functions)
ANSWER_SUFFIX = "\nAnswer:"  # after the options, in the published streaming evaluation
WINDOW_SUFFIX = "\nOnly give the best option."  # after the options, in the published sliding-window evaluation


def format_question(q: Question, time: float | None = None, suffix: str = ANSWER_SUFFIX) -> str:
    """`Question at {time}s: {question}\nOptions:\n(A) ...` + suffix; `time` defaults to `middle_frame_timestamp`
    as the file has it, as the published evaluation writes it (AVA: absolute, e.g. 945.0)."""
    return f"Question at {q.asked_time if time is None else time}s: {q.question}\n{format_options(q.candidates)}{suffix}"


def option_replies(candidates) -> list[str]:
    """Each option as a reply, in the options block's own form: "(A) red", "(B) green", ..."""
    return [f"({LETTERS[i]}) {c}" for i, c in enumerate(candidates)]


def format_options(candidates) -> str:
    """`Options:\n(A) ...\n(B) ...`, the options block of every multiple-choice prompt."""
    return "Options:\n" + "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(candidates))


# The benchmarks
@BENCHMARKS.register
class OVBench(Benchmark):
    """OVBench: AVA and TAO frame folders, COIN and HiREST video files; macro-average headline."""

    name, title, subsets, default_subsets = "ovbench", "OVBench", SUBSETS, SUBSETS
    system_message = SYSTEM_MESSAGE
    excluded_protocols = ("offline",)  # a question's own clip is [0, end]: offline would be recompute
    default_preset = DEFAULT_PRESET
    csv_columns, chart_key = ["group", "name", *results.COLUMNS], "accuracy"

    def load(self, anno_dir, roots, subsets) -> list[VideoTask]:
        return load_ovbench(anno_dir, roots, tuple(subsets))

    def question_text(self, q: Question, protocol) -> str:
        """The prompt of question `q` under a protocol and its preset."""
        preset = protocol.preset
        return format_question(q, time=q.end if preset.ask_at_end else None,
                               suffix=WINDOW_SUFFIX if protocol.sliding and preset.window_prompt else ANSWER_SUFFIX)

    def scripts(self, task: VideoTask, todo: set[str], protocol) -> list[tuple]:
        return [(self._script(q, protocol), (q.end, q.end)) for q in task.questions if q.qid in todo]

    def _script(self, q: Question, protocol):
        choices = option_replies(q.candidates) if protocol.config.answer_by == "likelihood" else None
        answer = yield Ask(q.end, self.question_text(q, protocol), since=q.start, choices=choices)
        yield self.record(q, answer, protocol.name)

    def query(self, clip: dict) -> Question:
        return question_from_entry(clip["question"], clip["subset"], clip["position"])

    def record(self, q: Question, answer: Answer | None, protocol: str, error: str | None = None) -> dict:
        """The question, the choice its reply makes under both scoring rules, and what the model saw."""
        text = None if answer is None else answer.reply.text
        prediction = None if text is None else extract_option(text, q.candidates)
        published = None if text is None else published_choice(text)
        return prediction_line(q.qid, q.subset, q.video, q.end, answer, protocol, error, answer_type=q.answer_type,
                               sub_answer_type=q.sub_answer_type, answer=q.answer_letter, prediction=prediction,
                               correct=prediction == q.answer_letter, published_choice=published,
                               published_correct=published == q.answer_letter,
                               self_contradicting=text is not None and self_contradicting(text, q.candidates))

    def table(self, records: list[dict]) -> dict:
        return results.accuracy_table(records)

    def markdown(self, table: dict) -> str:
        return results.markdown(table, self.title)

    def rows(self, table: dict) -> list[dict]:
        return results.table_rows(table)

    def charts(self, table: dict) -> dict[str, tuple[str, dict]]:
        out = {"answer_types": (f"{self.title} accuracy by task type", table["answer_type"])}
        for answer_type in table["answer_type"]:
            out[answer_type] = (f"{answer_type}: accuracy by sub-type", {
                k: v for k, v in table["sub_answer_type"].items() if k.startswith(answer_type + "-")})
        return out

    def summary(self, table: dict) -> str:
        head, overall = table["headline"], table["overall"]
        return (f"macro average {head['macro']:.2f} (published rule {head['macro_published_rule']:.2f}); accuracy "
                f"{overall['accuracy']:.2f}% ({overall['correct']}/{overall['total']}, {overall['failed']} failed)")


@BENCHMARKS.register
class SyntheticWorld(OVBench):
    """The synthetic world's test split (`videochat_online.synthetic`), in OVBench's format."""

    name, title, subsets, default_subsets = "synth", "Synthetic world", (SYNTHETIC_SUBSET,), (SYNTHETIC_SUBSET,)
