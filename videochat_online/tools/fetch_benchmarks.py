"""Fetch the OVO-Bench and StreamingBench annotation files from their pinned commits and check their sha256.

    python -m videochat_online.tools.fetch_benchmarks OUT_DIR [--benchmark NAME|all]

Each benchmark names its files (`Benchmark.annotations`).
They are not part of this repository (their licences differ: OVO-Bench's annotations are CC BY-NC-SA 4.0);
docs/evaluation.md says where each benchmark's videos come from and how to lay them out. OUT_DIR/ovo-bench and
OUT_DIR/streamingbench are then the `--anno-dir` of `videochat-online eval --benchmark ...`. A file already
there with the right sha256 is kept; a download that does not match is refused, naming the file. Every question
is then read as the evaluation reads it, and the counts printed.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import urllib.request
from pathlib import Path

from ..errors import InputError
from ..eval.benchmarks import BENCHMARKS
from ..options import run_main

BASE_URL = "https://raw.githubusercontent.com"


def sources() -> dict[str, tuple]:
    """benchmark -> (repository, commit, folder in it, {file: sha256}), for those whose files are fetched."""
    return {name: b.annotations for name, b in BENCHMARKS.items() if b.annotations}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(out_dir: str | Path, benchmarks: list[str], base_url: str = BASE_URL) -> list[Path]:
    """Each benchmark's files in OUT_DIR/<benchmark>/, checked; returns their paths."""
    written = []
    for name in benchmarks:
        repo, commit, folder, files = sources()[name]
        target = Path(out_dir) / name
        target.mkdir(parents=True, exist_ok=True)
        for file, digest in files.items():
            path = target / file
            if path.is_file() and sha256(path.read_bytes()) == digest:
                written.append(path)
                continue
            url = f"{base_url}/{repo}/{commit}/{folder}/{file}"
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    data = response.read()
            except OSError as err:
                raise InputError(f"{url}: cannot download it ({getattr(err, 'reason', err)})") from None
            if sha256(data) != digest:
                raise InputError(f"{url}: sha256 {sha256(data)} is not the pinned {digest}; nothing written")
            (target / f".{file}.tmp").write_bytes(data)
            (target / f".{file}.tmp").replace(path)
            written.append(path)
    return written


def counts(name: str, folder: Path) -> str:
    """Every question of a benchmark's fetched files read as `videochat-online eval` reads them: one line of counts
    (an error names the file and row that cannot be read)."""
    benchmark = BENCHMARKS.get(name)()
    tasks = benchmark.load(folder, {}, benchmark.subsets)
    per = {s: sum(q.qid.split("/")[0] == s for t in tasks for q in t.questions) for s in benchmark.subsets}
    return (f"{benchmark.title}: {len(tasks)} videos, {sum(per.values())} queries ("
            + ", ".join(f"{s} {n}" for s, n in per.items()) + ")")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m videochat_online.tools.fetch_benchmarks",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--benchmark", choices=[*sources(), "all"], default="all")
    parser.add_argument("--base-url", default=BASE_URL, help="where the repositories' raw files are served")
    args = parser.parse_args(argv)

    def run() -> int:
        names = list(sources()) if args.benchmark == "all" else [args.benchmark]
        for path in fetch(args.out_dir, names, args.base_url):
            print(f"ok {path}")
        for name in names:
            print(counts(name, Path(args.out_dir) / name))
        return 0

    return run_main(run)


if __name__ == "__main__":
    sys.exit(main())
