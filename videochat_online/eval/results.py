"""OVBench results: accuracy tables from prediction records (pure functions) and the files they are written to.

    results.json   overall / per subset / per answer_type / per sub_answer_type, with counts and failures
    results.csv    the same, one row per group
    results.md     the same as markdown tables
    charts/*.png   one bar chart per task type (answer_type): accuracy of each sub-type, and an overview
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

GROUPS = ("subset", "answer_type", "sub_answer_type")


def _cell(records: list[dict]) -> dict:
    correct = sum(bool(r["correct"]) for r in records)
    total = len(records)
    return {"correct": correct, "total": total, "failed": sum(r["status"] == "failed" for r in records),
            "accuracy": round(100.0 * correct / total, 2) if total else 0.0}


def accuracy_table(records: Iterable[dict]) -> dict:
    """Accuracy overall and per group. A failed question counts as answered wrongly (and is listed)."""
    records = list(records)
    table: dict = {"overall": _cell(records)}
    for group in GROUPS:
        buckets: dict[str, list[dict]] = defaultdict(list)
        for r in records:
            buckets[r[group]].append(r)
        table[group] = {name: _cell(rs) for name, rs in sorted(buckets.items())}
    table["failed"] = [{"id": r["id"], "video": r["video"], "error": r["error"]}
                       for r in records if r["status"] == "failed"]
    return table


def table_rows(table: dict) -> list[dict]:
    rows = [{"group": "overall", "name": "overall", **table["overall"]}]
    for group in GROUPS:
        rows += [{"group": group, "name": name, **cell} for name, cell in table[group].items()]
    return rows


def markdown(table: dict, title: str = "OVBench") -> str:
    lines = [f"# {title}", "", f"Overall: **{table['overall']['accuracy']:.2f}%** "
             f"({table['overall']['correct']}/{table['overall']['total']}, {table['overall']['failed']} failed)", ""]
    for group in GROUPS:
        lines += [f"## By {group}", "", f"| {group} | accuracy | correct | total | failed |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {c['accuracy']:.2f} | {c['correct']} | {c['total']} | {c['failed']} |"
                  for name, c in table[group].items()]
        lines.append("")
    if table["failed"]:
        lines += ["## Failed questions", ""] + [f"- {f['id']} ({f['video']}): {f['error']}" for f in table["failed"]]
    return "\n".join(lines) + "\n"


def _bar_chart(path: Path, title: str, cells: dict[str, dict]) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    names = list(cells)
    fig = Figure(figsize=(max(4.0, 0.9 * len(names) + 1.5), 3.6), layout="constrained")
    ax = fig.subplots()
    bars = ax.bar(range(len(names)), [cells[n]["accuracy"] for n in names], color="#4878a8")
    ax.bar_label(bars, labels=[f"{cells[n]['accuracy']:.1f}\nn={cells[n]['total']}" for n in names], fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    fig.savefig(path, dpi=100)


def write_results(out_dir: str | Path, records: list[dict], meta: dict | None = None) -> dict:
    """Write results.{json,csv,md} and charts/*.png for these prediction records; returns the table."""
    out = Path(out_dir)
    table = accuracy_table(records)
    (out / "results.json").write_text(json.dumps({"meta": meta or {}, **table}, indent=2, ensure_ascii=False))
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["group", "name", "accuracy", "correct", "total", "failed"])
        writer.writeheader()
        writer.writerows(table_rows(table))
    (out / "results.md").write_text(markdown(table))
    charts = out / "charts"
    charts.mkdir(exist_ok=True)
    _bar_chart(charts / "answer_types.png", "OVBench accuracy by task type", table["answer_type"])
    for answer_type in table["answer_type"]:
        subs = {k: v for k, v in table["sub_answer_type"].items() if k.startswith(answer_type + "-")}
        _bar_chart(charts / f"{answer_type}.png", f"{answer_type}: accuracy by sub-type", subs)
    return table
