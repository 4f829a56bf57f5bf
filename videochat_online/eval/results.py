"""Results: accuracy tables from prediction records (pure functions) and the files they are written to
(results.json, .csv, .md, charts/; docs/evaluation.md). The headline is the published macro average over
(answer_type, sub_answer_type) cells, beside the accuracy over questions, each under both scoring rules.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

GROUPS = ("subset", "answer_type", "sub_answer_type")
COLUMNS = ("accuracy", "accuracy_published_rule", "correct", "correct_published_rule", "total", "failed",
           "self_contradicting")


def _percent(part: int, total: int) -> float:
    return round(100.0 * part / total, 2) if total else 0.0


def _cell(records: list[dict]) -> dict:
    correct = sum(bool(r["correct"]) for r in records)
    published = sum(bool(r.get("published_correct")) for r in records)
    total = len(records)
    return {"accuracy": _percent(correct, total), "accuracy_published_rule": _percent(published, total),
            "correct": correct, "correct_published_rule": published, "total": total,
            "failed": sum(r["status"] == "failed" for r in records),
            "self_contradicting": sum(bool(r.get("self_contradicting")) for r in records)}


def _buckets(records: list[dict], key) -> dict:
    buckets: dict = defaultdict(list)
    for r in records:
        buckets[key(r)].append(r)
    return dict(sorted(buckets.items()))


def macro_average(records: list[dict], field: str = "correct") -> float:
    """The published "Avg": the mean over (answer_type, sub_answer_type) cells of each cell's accuracy."""
    cells = _buckets(records, lambda r: (r["answer_type"], r["sub_answer_type"]))
    if not cells:
        return 0.0
    return round(sum(100.0 * sum(bool(r.get(field)) for r in rs) / len(rs) for rs in cells.values()) / len(cells), 2)


def accuracy_table(records: Iterable[dict]) -> dict:
    """The headline (macro average) and accuracy overall, per group and per subset x answer_type; a failed
    question counts as answered wrongly (and is listed)."""
    records = list(records)
    table: dict = {"headline": {"macro": macro_average(records), "macro_published_rule":
                                macro_average(records, "published_correct"),
                                "cells": len(_buckets(records, lambda r: (r["answer_type"], r["sub_answer_type"])))},
                   "overall": _cell(records)}
    for group in GROUPS:
        table[group] = {name: _cell(rs) for name, rs in _buckets(records, lambda r: r[group]).items()}
    table["subset_x_answer_type"] = {f"{s}/{t}": _cell(rs) for (s, t), rs in
                                     _buckets(records, lambda r: (r["subset"], r["answer_type"])).items()}
    table["failed"] = [{"id": r["id"], "video": r["video"], "error": r["error"]}
                       for r in records if r["status"] == "failed"]
    return table


def table_rows(table: dict) -> list[dict]:
    head = table["headline"]
    rows = [{"group": "headline", "name": "macro average", "accuracy": head["macro"],
             "accuracy_published_rule": head["macro_published_rule"], "total": head["cells"]},
            {"group": "overall", "name": "overall", **table["overall"]}]
    for group in (*GROUPS, "subset_x_answer_type"):
        rows += [{"group": group, "name": name, **cell} for name, cell in table[group].items()]
    return rows


def _rows_md(title: str, first: str, cells: dict) -> list[str]:
    lines = [f"## {title}", "", f"| {first} | accuracy | published rule | correct | total | failed | "
             "letter and text disagree |", "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {name} | {c['accuracy']:.2f} | {c['accuracy_published_rule']:.2f} | {c['correct']} | {c['total']} | "
              f"{c['failed']} | {c['self_contradicting']} |" for name, c in cells.items()]
    return lines + [""]


def _grid_md(table: dict) -> list[str]:
    """subset x answer_type accuracy (strict rule) as one grid."""
    subsets = list(table["subset"])
    types = list(table["answer_type"])
    lines = ["## Subset x answer_type (accuracy, strict rule)", "", "| subset | " + " | ".join(types) + " |",
             "|---|" + "---:|" * len(types)]
    for s in subsets:
        cells = [table["subset_x_answer_type"].get(f"{s}/{t}") for t in types]
        lines.append(f"| {s} | " + " | ".join(f"{c['accuracy']:.2f}" if c else "-" for c in cells) + " |")
    return lines + [""]


def markdown(table: dict, title: str = "OVBench") -> str:
    head, overall = table["headline"], table["overall"]
    lines = [f"# {title}", "",
             f"Macro average (the published \"Avg\": mean of {head['cells']} answer_type x sub_answer_type cells): "
             f"**{head['macro']:.2f}** (strict rule), {head['macro_published_rule']:.2f} (published `mcq_acc` rule)", "",
             f"Accuracy over questions: {overall['accuracy']:.2f}% ({overall['correct']}/{overall['total']}, "
             f"{overall['failed']} failed); published rule {overall['accuracy_published_rule']:.2f}%", "",
             f"Replies whose letter and text choose different options (\"(B) Yes\" where B is \"No\"; both rules "
             f"follow the letter): {overall['self_contradicting']} of {overall['total']}", ""]
    for group in GROUPS:
        lines += _rows_md(f"By {group}", group, table[group])
    lines += _grid_md(table)
    return "\n".join(lines) + "\n"


def bar_chart(path: Path, title: str, cells: dict[str, dict], key: str = "accuracy") -> None:
    """A bar per cell: its `key` (a percentage) and its `total`."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    names = list(cells)
    fig = Figure(figsize=(max(4.0, 0.9 * len(names) + 1.5), 3.6), layout="constrained")
    ax = fig.subplots()
    bars = ax.bar(range(len(names)), [cells[n][key] for n in names], color="#4878a8")
    ax.bar_label(bars, labels=[f"{cells[n][key]:.1f}\nn={cells[n]['total']}" for n in names], fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    fig.savefig(path, dpi=100)


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def protocol_line(meta: dict | None) -> str:
    """How the run saw the videos, in words: "stream at 1 fps, memory pyramid" / "window (60 s) at 2 fps"."""
    p = (meta or {}).get("protocol")
    if not p:
        return ""
    window = f" ({p['window_seconds']:g} s)" if p.get("window_seconds") else ""
    pace = f" played {p['speed']:g}x real time (up to {p['buffer']} frames waiting)" if p.get("speed") else ""
    return f"{p['name']}{window} at {p['fps']:g} fps{pace}, preset {p['preset']}, memory {p['mode']}"


def work_line(meta: dict | None) -> str:
    """What this run computed: frames through the vision tower and seconds (a resumed run: its own share)."""
    w = (meta or {}).get("work")
    if not w:
        return ""
    late = f"; {w['late_asks']} asks after their video's end, answered at its end" if w.get("late_asks") else ""
    late += f"; {w['frames_dropped']} frames dropped (the model fell behind)" if w.get("frames_dropped") else ""
    return (f"this run: {w['frames_encoded']} frames encoded, {w['questions_answered']} predictions made in "
            f"{w['seconds']:.1f} s over {w['processes']} processes{late}")


def insert_run_line(text: str, meta: dict | None) -> str:
    """A results page with the protocol and the run's work under its title line."""
    lines = [line for line in (protocol_line(meta), work_line(meta)) if line]
    if not lines:
        return text
    title, _, rest = text.partition("\n")
    return "\n".join([title, "", *(f"{line[0].upper()}{line[1:]}." for line in lines)]) + "\n" + rest


# The real-time protocol (`realtime.AnswerTimer.stamp` in each line's "pace")
def realtime_table(records: Iterable[dict], offered_fps: float | None = None) -> dict | None:
    """How a run kept pace: frames offered, encoded and dropped (each video's counts at its last answer, summed),
    the sustained rate (frames into memory per wall second), and time to first token and to the whole reply
    (median, p95) and how far behind its ask each answer began (stream seconds); None when no line was paced."""
    from ..quantiles import median_p95

    stamped = [r for r in records if r.get("pace")]
    if not stamped:
        return None
    last: dict[str, dict] = {}
    for r in stamped:
        t = r["pace"]
        if r["video"] not in last or t["wall"] > last[r["video"]]["wall"]:
            last[r["video"]] = t
    total = {k: sum(t[k] for t in last.values()) for k in ("offered", "encoded", "dropped")}
    wall = sum(t["wall"] for t in last.values())

    def figures(values) -> dict:
        m = median_p95(values)
        return {"median": round(m[0], 4), "p95": round(m[1], 4)} if m else {"median": None, "p95": None}

    return {"questions": len(stamped), **total, "offered_fps": offered_fps, "wall_seconds": round(wall, 3),
            "sustained_fps": round(total["encoded"] / wall, 3) if wall > 0 else None,
            "ttft": figures(r["pace"]["ttft"] for r in stamped),
            "latency": figures(r["pace"]["latency"] for r in stamped),
            "behind": figures(max(0.0, r["pace"]["answered_at"] - r["time"]) for r in stamped)}


def realtime_markdown(table: dict, summary: str, compared: dict | None = None) -> str:
    """The results page's "Real time" section: the score under real time (beside a compared run's), then the pace."""
    lines = ["## Real time", "", "| run | score |", "| --- | --- |", f"| this run (real time) | {summary} |"]
    if compared:
        lines.append(f"| {compared['protocol']} ({compared['dir']}) | {compared['summary']} |")
    t = table

    def s(cell: dict) -> str:
        return "-" if cell["median"] is None else f"{cell['median']:.3f} / {cell['p95']:.3f}"

    offered = "-" if t["offered_fps"] is None else f"{t['offered_fps']:g}"
    sustained = "-" if t["sustained_fps"] is None else f"{t['sustained_fps']:.2f}"
    lines += ["", "| frames offered | encoded | dropped | offered fps | sustained fps | TTFT s (median / p95) | "
              "latency s (median / p95) | behind s (median / p95) |", "| " + " | ".join(["---"] * 8) + " |",
              f"| {t['offered']} | {t['encoded']} | {t['dropped']} | {offered} | {sustained} | {s(t['ttft'])} | "
              f"{s(t['latency'])} | {s(t['behind'])} |", "",
              "Rates are per wall second; TTFT and latency count from the ask's moment on the clock; behind: stream "
              "seconds between an ask and the moment its answer began.", ""]
    return "\n".join(lines)
