"""Accuracy under real time beside the stream protocol's: one benchmark evaluated under `--protocol stream`, then
under `--protocol realtime` at each `--speeds` factor (`--compare` naming the stream run), with the frames dropped,
the sustained rate and the time to first token of each, as a table and `--json`.

    python benchmarks/realtime_sweep.py --out runs/realtime_sweep --speeds 32,128,512,2048 -- \\
        --benchmark synth --model models/videochat-online-synthetic-tiny --anno-dir data/synth/ovbench \\
        --data-root synth=data/synth/videos/test --config shell/synthetic/eval.yaml

Everything after `--` is `videochat-online eval`'s options (not the protocol or the output folder). A run already
in `--out` is resumed as the evaluation resumes, so delete the folder for fresh timings. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from videochat_online.eval.benchmarks import BENCHMARKS
from videochat_online.eval.runner import main as eval_main


def evaluate(options: list[str], out: Path, *protocol: str) -> dict:
    code = eval_main([*options, *protocol, "--output-dir", str(out)])
    if code != 0:
        sys.exit(f"error: the evaluation into {out} exited {code}")
    return json.loads((out / "results.json").read_text())


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="a folder for the runs (one subfolder each)")
    parser.add_argument("--speeds", default="32,128,512,2048", help="comma-separated factors of real time")
    parser.add_argument("--json")
    args = parser.parse_args(argv[:split])
    options = argv[split + 1:]
    name = options[options.index("--benchmark") + 1] if "--benchmark" in options else "ovbench"
    benchmark = BENCHMARKS.get(name)()
    out = Path(args.out)
    stream = evaluate(options, out / "stream", "--protocol", "stream")
    rows = [{"protocol": "stream", "speed": None, "score": benchmark.summary(stream)}]
    for speed in [float(s) for s in args.speeds.split(",")]:
        results = evaluate(options, out / f"realtime_{speed:g}x", "--protocol", "realtime", "--speed", f"{speed:g}",
                           "--compare", str(out / "stream"))
        pace = results["pace"]
        rows.append({"protocol": "realtime", "speed": speed, "score": benchmark.summary(results),
                     "offered_fps": pace["offered_fps"], "sustained_fps": pace["sustained_fps"],
                     "offered": pace["offered"], "dropped": pace["dropped"], "ttft": pace["ttft"],
                     "behind": pace["behind"]})
    print("| protocol | score | offered fps | sustained fps | frames dropped | TTFT s (median / p95) |")
    print("|---|---|---:|---:|---:|---|")
    for r in rows:
        if r["speed"] is None:
            print(f"| stream | {r['score']} | - | - | - | - |")
            continue
        print(f"| realtime {r['speed']:g}x | {r['score']} | {r['offered_fps']:g} | {r['sustained_fps']:.1f} | "
              f"{r['dropped']} of {r['offered']} | {r['ttft']['median']:.3f} / {r['ttft']['p95']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"options": options, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
