"""OVO-Bench (JoeLeelyf/OVO-Bench, annotations at commit c34093f) as data: rows, the official prompts, both
scoring rules and the published headline (docs/evaluation.md, "OVO-Bench").

Backward-tracing and real-time rows are one multiple-choice query each, asked at `realtime`; the forward
tasks' rows (REC, SSR, CRR) are one probe per `test_info` entry, each asked at its own `realtime` along the same
stream. The published harness answers each query and probe alone on the clip [0, ceil(realtime)]; here no
query sees a frame after its own time.
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

FILE = "ovo_bench_new.json"
CATEGORIES = {  # as the published table orders them
    "realtime": ("OCR", "ACR", "ATR", "STU", "FPD", "OJR"),
    "backward": ("EPM", "ASI", "HLD"),
    "forward": ("REC", "SSR", "CRR"),
}
CATEGORY_OF = {task: category for category, tasks in CATEGORIES.items() for task in tasks}
TASKS = tuple(CATEGORY_OF)
ROOT = "videos"  # the one folder every row's `video` path is relative to

# The official prompts (constant.py at the pinned commit), to the character.
BR_PROMPT = ("\nQuestion: {}\nOptions:\n{}\n\nRespond only with the letter corresponding to your chosen option "
             "(e.g., A, B, C). \nDo not include any additional text or explanation in your response.\n")
REC_PROMPT = ("\nYou're watching a video in which people may perform a certain type of action repetively. \nThe "
              "person performing this kind of action are referred to as 'they' in the following statement.\nYou're "
              "task is to count how many times have different people in the video perform this kind of action in "
              "total.\nOne complete motion counts as one. \nNow, answer the following question: {}\nProvide your "
              "answer as a single number (e.g., 0, 1, 2, 3…) indicating the total count.\nDo not include any "
              "additional text or explanation in your response.\n")
SSR_PROMPT = ("\nYou're watching a tutorial video which contain a sequential of steps. \nThe following is one step "
              "from the whole procedures: \n{}\nYour task is to determine if the man or woman in the video is "
              "currently performing this step.\nAnswer only with “Yes” or “No”.\nDo not include any additional text "
              "or explanation in your response.\n")
CRR_PROMPT = ("\nYou're responsible of answering questions based on the video content. \nThe following question "
              "are relevant to the latest frames, i.e. the end of the video.\n{}\nDecide whether existing visual "
              "content, especially latest frames, i.e. frames that near the end of the video, provide enough "
              "information for answering the question.\nAnswer only with “Yes” or “No”.\nDo not include any "
              "additional text or explanation in your response.\n")


@dataclass
class Query:
    qid: str  # "{task}/{id}" for a question, "{task}/{id}/{probe}" for a forward task's probe
    task: str
    video: str
    end: float  # asked here
    row: dict
    probe: int | None = None
    start: float = 0.0

    @property
    def first(self) -> float:
        return self.end

    @property
    def answer(self) -> str:
        """The expected reply: the option letter, the count (REC), or Yes / No (SSR, CRR)."""
        if self.probe is None:
            return LETTERS[self.row["gt"]]
        info = self.row["test_info"][self.probe]
        return str(info["count"]) if self.task == "REC" else ("Yes" if info["type"] == 1 else "No")


def prompt(q: Query) -> str:
    """The official prompt of a query or probe."""
    if q.probe is None:
        options = "; ".join(f"{LETTERS[i]}. {option}" for i, option in enumerate(q.row["options"])) + ";"
        return BR_PROMPT.format(q.row["question"], options)
    if q.task == "REC":
        return REC_PROMPT.format("How many times did they " + q.row["activity"] + "?")
    if q.task == "SSR":
        return SSR_PROMPT.format(q.row["test_info"][q.probe]["step"])
    return CRR_PROMPT.format(q.row["question"])


def official_correct(q: Query, reply: str | None) -> bool:
    """The published verdict (utils/OVOBenchScore.py): the letter anywhere in the reply (case-sensitive); REC:
    every digit of the reply joined equals the count; SSR, CRR: exactly "Y" / "N", else "Yes" / "No" anywhere."""
    if reply is None:
        return False
    if q.task == "REC":
        return "".join(re.findall(r"\d+", reply)) == q.answer
    if q.probe is not None and reply in ("Y", "N"):
        return reply == q.answer[0]
    return q.answer in reply


def strict_correct(q: Query, reply: str | None) -> bool:
    """The published verdict, and one unambiguous answer on top of it: the option the reply chooses
    (`extract_option`); REC: the reply's one number; SSR, CRR: yes or no, one of them and not both. So a reply
    right under this rule is right under the published one too."""
    if not official_correct(q, reply):
        return False
    if q.probe is None:
        return extract_option(reply, q.row["options"]) == q.answer
    if q.task == "REC":
        numbers = re.findall(r"\d+", reply)
        return len(numbers) == 1 and int(numbers[0]) == int(q.answer)
    said = {w for w in re.findall(r"[a-z]+", reply.lower()) if w in ("yes", "no", "y", "n")}
    said = {w[0] for w in said}
    return said == {q.answer[0].lower()}


def script(q: Query, protocol: str):
    """Ask the query at its time; yield its prediction line."""
    answer: Answer = yield Ask(q.end, prompt(q))
    yield line(q, answer, protocol)


def line(q: Query, answer: Answer | None, protocol: str, error: str | None = None) -> dict:
    reply = None if answer is None else answer.reply.text
    return prediction_line(q.qid, q.task, q.video, q.end, answer, protocol, error, category=CATEGORY_OF[q.task],
                           answer=q.answer, correct=strict_correct(q, reply),
                           published_correct=official_correct(q, reply))


# Rows
_TEXT = {"backward": ("question",), "realtime": ("question",), "forward": ()}
_PROBE_FIELDS = {"REC": {"count": int}, "SSR": {"step": str, "type": int}, "CRR": {"type": int}}


def _check(row, where: str) -> None:
    """Every field a row's queries read, of its type; every time one a video can have."""
    if not isinstance(row, dict) or row.get("task") not in CATEGORY_OF:
        raise OVBenchError(f"{where}: not an OVO-Bench row (its task must be one of {', '.join(TASKS)})")
    task = row["task"]
    where = f"{where} ({task})"
    field(row, "id", int, where)
    field(row, "video", str, where)
    for key in _TEXT[CATEGORY_OF[task]] + (("activity",) if task == "REC" else ()) + \
            (("question",) if task == "CRR" else ()):
        field(row, key, str, where)
    if CATEGORY_OF[task] == "forward":
        probes = field(row, "test_info", list, where)
        if not probes:
            raise OVBenchError(f"{where}: 'test_info' must be a non-empty list of probes")
        for i, info in enumerate(probes):
            if not isinstance(info, dict):
                raise OVBenchError(f"{where}: probe {i} must be an object")
            check_time(info.get("realtime"), f"{where}: probe {i}", "realtime")
            for key, kind in _PROBE_FIELDS[task].items():
                field(info, key, kind, f"{where}: probe {i}")
            if "type" in info and info["type"] not in (0, 1):
                raise OVBenchError(f"{where}: probe {i}: 'type' must be 0 or 1, got {info['type']!r}")
        return
    options, gt = field(row, "options", list, where), field(row, "gt", int, where)
    if not 2 <= len(options) <= len(LETTERS) or not all(isinstance(o, str) for o in options) \
            or not 0 <= gt < len(options):
        raise OVBenchError(f"{where}: needs 2 to {len(LETTERS)} options, each a string, and gt an index into them")
    check_time(row.get("realtime"), where, "realtime")


def queries(row: dict) -> list[Query]:
    """A row's queries: itself, or one per probe of a forward task."""
    if "test_info" in row:
        return [Query(f"{row['task']}/{row['id']}/{i}", row["task"], row["video"], float(info["realtime"]), row, i)
                for i, info in enumerate(row["test_info"])]
    return [Query(f"{row['task']}/{row['id']}", row["task"], row["video"], float(row["realtime"]), row)]


def load(anno_dir: str | Path, root: str | Path | None, tasks: tuple[str, ...] = TASKS) -> list[VideoTask]:
    """The tasks' queries grouped by video (each video watched once for all of them), in time order."""
    file = Path(anno_dir) / FILE
    rows = read_annotations(file)
    videos: dict[str, VideoTask] = {}
    seen: dict[tuple[str, int], int] = {}
    base = Path(root) if root else Path(f"<{ROOT} root not set>")
    for i, row in enumerate(rows):
        _check(row, f"{file}: row {i}")
        key = (row["task"], row["id"])
        if key in seen:
            raise OVBenchError(f"{file}: row {i} ({row['task']}): id {row['id']} is also row {seen[key]}'s")
        seen[key] = i
        if row["task"] not in tasks:
            continue
        if row["video"] not in videos:
            path, refused = inside(base, row["video"])
            videos[row["video"]] = VideoTask(ROOT, row["video"], path, None, error=refused)
        videos[row["video"]].questions += queries(row)
    for task in videos.values():
        task.questions.sort(key=lambda q: (q.end, order(q.qid)))
    return list(videos.values())


def order(qid: str) -> tuple:
    """Row id, then probe: the file's order."""
    parts = qid.split("/")
    return int(parts[1]), int(parts[2]) if len(parts) > 2 else -1


# Results (pure functions of the prediction lines)
def table(records: list[dict]) -> dict:
    """Per task (its queries or probes pooled), per category (the mean of its tasks) and overall (the mean of the
    three categories), under both rules, as the published table has them."""
    out: dict = {"tasks": {}, "categories": {}}
    for rule, key in (("published", "published_correct"), ("strict", "correct")):
        means: dict[str, float] = {}
        for category, tasks in CATEGORIES.items():
            scores = []
            for task in tasks:
                rows = [r for r in records if r["subset"] == task]
                if rows:
                    accuracy = 100.0 * sum(bool(r[key]) for r in rows) / len(rows)
                    out["tasks"].setdefault(task, {"total": len(rows),
                                                   "failed": sum(r["status"] == "failed" for r in rows)})
                    out["tasks"][task][rule] = round(accuracy, 2)
                    scores.append(accuracy)
            if scores:
                means[category] = sum(scores) / len(scores)
                out["categories"].setdefault(category, {})[rule] = round(means[category], 2)
        overall = [means[c] for c in CATEGORIES if c in means]  # unrounded, as the published scorer averages
        out.setdefault("overall", {})[rule] = round(sum(overall) / len(overall), 2) if overall else 0.0
    return out


CSV_COLUMNS = ["group", "name", "published", "strict", "total", "failed"]


def rows(result: dict) -> list[dict]:
    """results.csv: a row per task, per category and overall."""
    out = [{"group": "overall", "name": "overall", **result["overall"]}]
    out += [{"group": "category", "name": name, **cell} for name, cell in result["categories"].items()]
    return out + [{"group": "task", "name": name, **cell} for name, cell in result["tasks"].items()]


def charts(result: dict) -> dict[str, tuple[str, dict]]:
    """charts/*.png: accuracy per task under the published rule."""
    return {"tasks": ("OVO-Bench accuracy by task (published rule)", result["tasks"])}


def markdown(result: dict, title: str = "OVO-Bench") -> str:
    """The published layout: real-time, backward and forward columns with their averages, then overall."""
    t, c = result["tasks"], result["categories"]
    columns = [(task, t.get(task)) for tasks in CATEGORIES.values() for task in tasks]
    head = ["rule", *[name for name, _ in columns], "RT avg", "BT avg", "FAR avg", "overall"]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    show = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    for rule in ("published", "strict"):
        cells = [show(cell.get(rule) if cell else None) for _, cell in columns]
        cells += [show(c.get(k, {}).get(rule)) for k in ("realtime", "backward", "forward")]
        lines.append(f"| {rule} | " + " | ".join(cells) + f" | **{show(result['overall'][rule])}** |")
    lines += ["", "Queries (probes for REC, SSR, CRR) per task: "
              + ", ".join(f"{name} {cell['total']}" for name, cell in columns if cell)]
    failed = sum(cell["failed"] for _, cell in columns if cell)
    return "\n".join(lines + (["", f"{failed} failed (scored wrong)."] if failed else [])) + "\n"


@BENCHMARKS.register
class OVOBench(Benchmark):
    """OVO-Bench: 12 tasks, backward / real-time queries and forward probes along one stream per video."""

    name, title, subsets, default_subsets = "ovo-bench", "OVO-Bench", TASKS, TASKS
    roots, default_preset, generates_only = (ROOT,), "streaming", True
    annotations = ("JoeLeelyf/OVO-Bench", "c34093f9a072d93f9e1c6b923446dfba71f4528e", "data", {
        FILE: "dc4a90daf26764dc8ab8b228ea4af864ba2ea50c2833ead8c9af6573f78ccf97"})
    csv_columns, chart_key = CSV_COLUMNS, "published"

    def load(self, anno_dir, roots, subsets) -> list[VideoTask]:
        return load(anno_dir, roots.get(ROOT), tuple(subsets))

    def question_file(self, subset: str) -> str:
        return FILE

    def scripts(self, task: VideoTask, todo: set[str], protocol) -> list[tuple]:
        return [(script(q, protocol.name), (q.end, q.end)) for q in task.questions if q.qid in todo]

    def query(self, clip: dict) -> Query:
        return queries(clip["row"])[0]

    def record(self, q: Query, answer, protocol: str, error: str | None = None) -> dict:
        return line(q, answer, protocol, error)

    def order(self, qid: str) -> tuple:
        return order(qid)

    def table(self, records: list[dict]) -> dict:
        scores = table(records)
        return {**scores, "overall": {**scores["overall"], "total": len(records)}}

    def markdown(self, table: dict) -> str:
        return markdown(table, self.title)

    rows, charts = staticmethod(rows), staticmethod(charts)

    def summary(self, table: dict) -> str:
        o = table["overall"]
        return f"overall {o['published']:.2f} (published rule; strict {o['strict']:.2f})"
