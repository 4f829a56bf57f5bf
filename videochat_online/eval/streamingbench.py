"""StreamingBench (THUNLP-MT/StreamingBench, `src/data/` at commit 8929923) as data: questions, the official
prompts, both scoring rules and the published headline (docs/evaluation.md, "StreamingBench").

Subsets: `real` (real-time visual understanding, 2,500 questions), `sqa` (sequential question answering, 250:
the prompt carries the earlier turns with their ground-truth answers, as published), `sqa_own` (the same with
the model's own earlier answers), `proactive` (all 250 proactive-output questions) and `proactive_50` (the 51
behind the published column). The omni-source tasks need audio and are not evaluated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..data.paths import inside
from .annotations import OVBenchError, check_time, field, read_annotations
from .benchmarks import BENCHMARKS, Benchmark, VideoTask, prediction_line
from .driver import Answer, Ask
from .scoring import LETTERS, extract_option

FILES = {"real": "questions_real.json", "sqa": "questions_sqa.json", "sqa_own": "questions_sqa.json",
         "proactive": "questions_proactive.json", "proactive_50": "questions_proactive_50.json"}
SUBSETS = tuple(FILES)
ROOT = "videos"
POLL_SECONDS, POLL_AFTER_TRUTH, TIME_TOLERANCE = 1.0, 4.0, 2.0  # proactive: poll every second to truth + 4 s

# The official prompts (src/benchmark/*.py at the pinned commit), to the character.
REAL_PROMPT = ("You are an advanced video question-answering AI assistant. You have been provided with some frames "
               "from the video and a multiple-choice question related to the video. Your task is to carefully "
               "analyze the video and provide the best answer to question, choosing from the four options provided. "
               "Respond with only the letter (A, B, C, or D) of the correct option.\n\nQuestion: {}\n\nOptions:\n"
               "{}\n{}\n{}\n{}" + "\n\nThe best option is:")
SQA_PROMPT = ("You are an advanced video question-answering AI assistant. You have been provided with a video and a "
              "multiple-choice question related to the video. Your task is to carefully analyze the video and the "
              "provided context to answer the question, choosing from the four options provided. Respond with only "
              "the letter (A, B, C, or D) of the correct option.\n\n{}\n\nHere is the question. Answer it and don't "
              "confuse it with the previous conversation.\nQuestion: {}\n\nOptions:\n{}\n{}\n{}\n{}\n\n"
              "The best option is:")
SQA_CONTEXT = ("Here are the contextual information related to the video. Please answer the questions based on the "
               "contextual information: ")
SQA_TURN = "At timestamp {}, the following question and answer occurred: Question: {}; Options: {}, {}, {}, {}; Answer: {}; "
PROACTIVE_PROMPT = ("You are an advanced image question-answering AI assistant. You have been provided with images and "
                    "a question related to the images. Your task is to carefully analyze the images and provide the "
                    "answer to the question. You need to carefully confirm whether the images content meet the "
                    "conditions of the question, and then output the correct content.\n\nQuestion: {}\n\n"
                    "The answer is:\n")
PROACTIVE_POLL = '{} Is it the right time to output "{}"? You can only answer yes or no.'


def seconds(stamp: str) -> float:
    """"00:03:10" -> 190.0."""
    return float(sum(int(x) * 60 ** i for i, x in enumerate(reversed(stamp.split(":")))))


def lettered(options: list[str]) -> list[str]:
    """Options as the prompts show them: "A. ..." (the real-time file has the prefixes, the SQA file not)."""
    return list(options) if options[0].startswith("A.") else [f"{LETTERS[i]}. {o}" for i, o in enumerate(options)]


@dataclass
class Query:
    qid: str  # "{subset}/{position among the subset's questions}"
    subset: str
    video: str
    entry: dict  # the question as the file has it
    end: float  # the last moment it may be asked (proactive: truth + 4 s)
    first: float  # the first (proactive: a second after the question)
    start: float = 0.0

    @property
    def asked(self) -> float:
        return seconds(self.entry["time_stamp"])


# Scoring (pure functions)
def official_choice(reply: str | None) -> str | None:
    """What the published count.py compares with the answer: the reply's first character (None: no reply, which
    leaves the denominator)."""
    return reply[0] if reply else None


def proactive_verdicts(q: Query, last_time: float, last_reply: str | None) -> tuple[bool, bool, bool]:
    """(time correct, answer correct, strict): the last turn within +-2 s of the ground-truth time, and the output
    string in its reply (strict: as whole words)."""
    truth = q.entry["ground_truth_output"]
    on_time = abs(last_time - seconds(q.entry["ground_truth_time_stamp"])) <= TIME_TOLERANCE
    said = on_time and last_reply is not None and truth in last_reply
    words = re.escape(truth)
    strict = said and re.search(rf"(?<![\w]){words}(?![\w])", last_reply) is not None
    return on_time, said, strict


def choice_line(q: Query, answer: Answer | None, protocol: str, error: str | None = None, **extra) -> dict:
    reply = None if answer is None else answer.reply.text
    options = [re.sub(r"^[A-D]\.\s*", "", o) for o in q.entry["options"]]
    choice = official_choice(reply)
    return prediction_line(q.qid, q.subset, q.video, q.asked, answer, protocol, error,
                           task_type=q.entry["task_type"], answer=q.entry["answer"],
                           correct=choice == q.entry["answer"] and extract_option(reply, options) == q.entry["answer"],
                           published_choice=choice, published_correct=choice == q.entry["answer"],
                           answered=choice is not None, **extra)


# Scripts: what is asked, when
def real_script(q: Query, protocol: str):
    e = q.entry
    answer = yield Ask(q.asked, REAL_PROMPT.format(e["question"], *lettered(e["options"])))
    yield choice_line(q, answer, protocol)


def sqa_script(video_queries: list[Query], protocol: str, own_answers: bool):
    """A video's sequential questions in time order, each prompt carrying the earlier turns (earlier in the file,
    as published) with their ground-truth answers, or with the model's own (those already given)."""
    replies: dict[str, str] = {}
    for q in sorted(video_queries, key=lambda q: q.asked):
        turns = []
        for earlier in video_queries[:video_queries.index(q)]:
            e = earlier.entry
            said = replies.get(earlier.qid) if own_answers else e["answer"]
            if said is not None:
                turns.append(SQA_TURN.format(e["time_stamp"], e["question"], *lettered(e["options"]), said))
        context = SQA_CONTEXT + "".join(turns) if turns else ""
        e = q.entry
        answer = yield Ask(q.asked, SQA_PROMPT.format(context, e["question"], *lettered(e["options"])))
        replies[q.qid] = answer.reply.text
        yield choice_line(q, answer, protocol)


def proactive_script(q: Query, protocol: str):
    """Poll every second from a second after the question to truth + 4 s: "is it the right time to output ...?";
    at the first reply holding "yes", ask the question itself: its reply is the output (the published loop)."""
    e = q.entry
    poll = PROACTIVE_PROMPT.format(PROACTIVE_POLL.format(e["question"], e["ground_truth_output"]))
    t, answer, polls, output = q.first, None, 0, None
    while t <= q.end + 1e-6:
        answer = yield Ask(t, poll, since=q.asked)
        polls += 1
        if "yes" in answer.reply.text.strip().lower():
            answer = output = yield Ask(t, PROACTIVE_PROMPT.format(e["question"]), since=q.asked)
            break
        if answer.ended:  # the video is over: a later poll sees nothing new
            break
        t += POLL_SECONDS
    last_time = answer.time if answer is not None else q.end
    on_time, said, strict = proactive_verdicts(q, last_time, None if answer is None else answer.reply.text)
    yield prediction_line(q.qid, q.subset, q.video, last_time, answer, protocol, None, task_type=e["task_type"],
                          asked=q.asked,
                          answer=e["ground_truth_output"], truth_time=seconds(e["ground_truth_time_stamp"]),
                          answered_at=None if output is None else output.time, polls=polls,
                          answered=answer is not None, time_correct=on_time, published_correct=said, correct=strict)


def failed_line(q: Query, protocol: str, error: str) -> dict:
    if q.subset.startswith("proactive"):
        return prediction_line(q.qid, q.subset, q.video, q.asked, None, protocol, error,
                               task_type=q.entry["task_type"], answer=q.entry["ground_truth_output"],
                               answered=False, time_correct=False, published_correct=False, correct=False)
    return choice_line(q, None, protocol, error)


# Questions
_TEXT = {"real": ("task_type", "question", "time_stamp", "answer"), "sqa": ("task_type", "question", "time_stamp", "answer"),
         "proactive": ("task_type", "question", "time_stamp", "ground_truth_time_stamp", "ground_truth_output")}


def _records(data: list, subset: str) -> list[list[dict]]:
    """The file's records grouped as published: a list of records, or (SQA) a list per video of lists."""
    return [group if isinstance(group, list) else [group] for group in data] if subset.startswith("sqa") \
        else [[record] for record in data]


def _check(e, where: str, subset: str) -> None:
    """Every field of a question of its type, its times ones a video can have ([H:]M:S, at most a day)."""
    if not isinstance(e, dict):
        raise OVBenchError(f"{where}: a question must be an object")
    kind = subset.split("_")[0]
    for key in _TEXT[kind]:
        field(e, key, str, where)
    for key in ("time_stamp", "ground_truth_time_stamp"):
        if key in _TEXT[kind]:
            if not re.fullmatch(r"\d+(:\d+){0,2}", e[key]):
                raise OVBenchError(f"{where}: '{key}' {e[key]!r:.40} is not [HH:]MM:SS")
            check_time(seconds(e[key]), where, key)
    if kind != "proactive":
        options = field(e, "options", list, where)
        if len(options) != 4 or not all(isinstance(o, str) and o for o in options) or e["answer"] not in LETTERS[:4]:
            raise OVBenchError(f"{where}: needs 4 options, each a string, and an answer letter A-D")


def video_path(root: Path, path: str) -> tuple[Path, str | None]:
    """Where a question's video is: `video_path` under the root (e.g. ./videos/sample_1_real.mp4), else its file
    name directly in the root; and why it is refused if it is not inside the root (`annotations.inside`)."""
    direct, refused = inside(root, path)
    if refused or direct.exists() or not (root / Path(path).name).exists():
        return direct, refused
    return root / Path(path).name, None


def load(anno_dir: str | Path, root: str | Path | None, subsets: tuple[str, ...]) -> list[VideoTask]:
    """The subsets' questions grouped by video, each in time order."""
    base = Path(root) if root else Path(f"<{ROOT} root not set>")
    videos: dict[str, VideoTask] = {}
    for subset in subsets:
        file = Path(anno_dir) / FILES[subset]
        position = 0
        for g, group in enumerate(_records(read_annotations(file), subset)):
            for record in group:
                if not isinstance(record, dict):
                    raise OVBenchError(f"{file}: record {g} must be an object with a video_path and questions")
                field(record, "video_path", str, f"{file}: record {g}")
                field(record, "questions", list, f"{file}: record {g}")
                for e in record["questions"]:
                    _check(e, f"{file}: record {g}, question {position}", subset)
                    asked = seconds(e["time_stamp"])
                    last = seconds(e["ground_truth_time_stamp"]) + POLL_AFTER_TRUTH if "ground_truth_time_stamp" \
                        in e else asked
                    first = asked + POLL_SECONDS if "ground_truth_time_stamp" in e else asked
                    path = record["video_path"]
                    if path not in videos:
                        where, refused = video_path(base, path)
                        videos[path] = VideoTask(ROOT, path, where, None, error=refused)
                    task = videos[path]
                    task.questions.append(Query(f"{subset}/{position}", subset, path, e, last, first))
                    position += 1
    return list(videos.values())


def scripts(task: VideoTask, todo: set[str], protocol: str) -> list:
    """The scripts answering a video's questions in `todo` (SQA: the video's whole sequence, so that each prompt
    has its earlier turns)."""
    out = []
    for subset in ("sqa", "sqa_own"):
        mine = [q for q in task.questions if q.subset == subset]
        if any(q.qid in todo for q in mine):
            out.append((sqa_script(mine, protocol, own_answers=subset == "sqa_own"), (min(q.first for q in mine),
                                                                                       max(q.end for q in mine))))
    for q in task.questions:
        if q.qid in todo and not q.subset.startswith("sqa"):
            run = proactive_script if q.subset.startswith("proactive") else real_script
            out.append((run(q, protocol), (q.first, q.end)))
    return out


def order(qid: str) -> tuple:
    subset, position = qid.split("/")
    return SUBSETS.index(subset), int(position)


# Results
def table(records: list[dict]) -> dict:
    """Per subset and task type: accuracy as published (answered questions only; proactive: time and answer
    accuracy over all) and under the strict rule (every question, unanswered ones wrong)."""
    out: dict = {}
    for subset in SUBSETS:
        rows = [r for r in records if r["subset"] == subset]
        if not rows:
            continue
        groups = {"all": rows}
        for r in rows:
            groups.setdefault(r["task_type"], []).append(r)
        out[subset] = {name: _cell(rs, subset.startswith("proactive")) for name, rs in groups.items()}
    return {"subsets": out}


def _cell(rows: list[dict], proactive: bool) -> dict:
    """A subset's or task type's scores. The published counting skips the questions without a reply (`published`,
    `published_time`); `published_all` keeps them in, as wrong; `strict` is over every question."""
    pct = lambda n, d: round(100.0 * n / d, 2) if d else 0.0  # noqa: E731
    answered = [r for r in rows if r.get("answered")]
    cell = {"total": len(rows), "failed": sum(r["status"] == "failed" for r in rows), "answered": len(answered),
            "published": pct(sum(bool(r["published_correct"]) for r in answered), len(answered)),
            "published_all": pct(sum(bool(r["published_correct"]) for r in rows), len(rows)),
            "strict": pct(sum(bool(r["correct"]) for r in rows), len(rows))}
    if proactive:
        cell["published_time"] = pct(sum(bool(r["time_correct"]) for r in answered), len(answered))
    return cell


def markdown(result: dict, title: str = "StreamingBench") -> str:
    lines = [f"# {title}", "", "`published`: as the published scorer counts, over the questions with a reply (the "
             "published figure); `published (all)`: the same rule with unanswered questions wrong; `strict`: the "
             "published rule and one unambiguous choice, over every question.", ""]
    for subset, groups in result["subsets"].items():
        proactive = subset.startswith("proactive")
        head = ["task type", "questions", "answered", "published" + (" (answer)" if proactive else ""),
                *(["published (time)"] if proactive else []), "published (all)", "strict (all)"]
        lines += [f"## {subset}", "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        for name, c in sorted(groups.items(), key=lambda kv: kv[0] != "all"):
            cells = [c["total"], c["answered"], f"{c['published']:.2f}",
                     *([f"{c['published_time']:.2f}"] if proactive else []), f"{c['published_all']:.2f}",
                     f"{c['strict']:.2f}"]
            lines.append(f"| {'**all**' if name == 'all' else name} | " + " | ".join(map(str, cells)) + " |")
        lines.append("")
    return "\n".join(lines)


CSV_COLUMNS = ["group", "name", "published", "published_all", "published_time", "strict", "total", "answered",
               "failed"]


def rows(result: dict) -> list[dict]:
    """results.csv: a row per subset and task type (`all`: the subset)."""
    return [{"group": subset, "name": name, **cell} for subset, groups in result["subsets"].items()
            for name, cell in groups.items()]


def charts(result: dict) -> dict[str, tuple[str, dict]]:
    """charts/*.png: accuracy per task type under the published rule, a chart per subset."""
    return {subset: (f"StreamingBench {subset}: accuracy by task type (published rule)", groups)
            for subset, groups in result["subsets"].items()}


@BENCHMARKS.register
class StreamingBench(Benchmark):
    """StreamingBench: real-time, sequential QA and proactive output along one stream per video (no audio)."""

    name, title, subsets, default_subsets = "streamingbench", "StreamingBench", SUBSETS, ("real", "sqa", "proactive_50")
    roots, default_preset, generates_only = (ROOT,), "streaming", True
    annotations = ("THUNLP-MT/StreamingBench", "89299232c4cc1cc3721951173c5f107b48cf6877", "src/data", {
        "questions_real.json": "64ca14052205a240ccc5391dd6d1784dac3c11ed86e0f0aa2eac3176ab56329a",
        "questions_sqa.json": "ea0be61f17313c72fb8994d16a0f6378c4a91c978857c5b3f723cf8311312a2d",
        "questions_proactive.json": "e17db411762c643afa70c17895871bf3e9d20b2119890889034ee31fb96a590d",
        "questions_proactive_50.json": "e1800732fbed5605c4b965e2312496f414a13c8245ed7062acffdcd7901d5bd8"})
    csv_columns, chart_key = CSV_COLUMNS, "published"

    def load(self, anno_dir, roots, subsets) -> list[VideoTask]:
        return load(anno_dir, roots.get(ROOT), tuple(subsets))

    def question_file(self, subset: str) -> str:
        return FILES[subset]

    def scripts(self, task: VideoTask, todo: set[str], protocol) -> list[tuple]:
        return scripts(task, todo, protocol.name)

    def query(self, clip: dict) -> Query:
        asked = seconds(clip["entry"]["time_stamp"])
        return Query(f"real/{clip['position']}", "real", clip["video_path"], clip["entry"], asked, asked)

    def record(self, q: Query, answer, protocol: str, error: str | None = None) -> dict:
        return failed_line(q, protocol, error)

    def order(self, qid: str) -> tuple:
        return order(qid)

    def table(self, records: list[dict]) -> dict:
        return {**table(records), "overall": {"total": len(records)}}

    def markdown(self, table: dict) -> str:
        return markdown(table, self.title)

    rows, charts = staticmethod(rows), staticmethod(charts)

    def summary(self, table: dict) -> str:
        return "; ".join(f"{name} {cells['all']['published']:.2f} (strict {cells['all']['strict']:.2f})"
                         for name, cells in table["subsets"].items())
