"""Watch quality as numbers: alert recall, false alerts per hour of video and alert delay (median, p95) of
`stream --watch` on the synthetic world's held-out scenes (`videochat_online.synthetic.watch_quality`), for each
memory policy and for confirm 1, 2 and 3.

    python benchmarks/watch_quality.py [--model PATH] [--scenes 20] [--json docs/watch_quality_cpu.json]

The scenes are the first `--scenes` / 2 held-out scenes where the shape leaves and as many where it stays. Each
policy's poll replies are taken once; the confirm counts are applied to the same replies. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from videochat_online.backbones import load_engine
from videochat_online.memory import POLICIES
from videochat_online.stream_config import resolve_fps, resolve_memory
from videochat_online.synthetic.build import scenes
from videochat_online.synthetic.watch_quality import poll_replies, score

ROOT = Path(__file__).resolve().parents[1]


def held_out(count: int) -> list:
    test = scenes(0, 0, 20 * count)[1]
    leaving = [s for s in test if s.leave is not None][: count // 2]
    staying = [s for s in test if s.leave is None][: count - count // 2]
    return leaving + staying


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "videochat-online-synthetic-tiny"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--json")
    args = parser.parse_args()
    engine = load_engine(args.model, device=args.device)
    fps = resolve_fps(None, engine.config)
    chosen = held_out(args.scenes)
    folder = Path(tempfile.mkdtemp(prefix="watch-quality-"))
    rows = []
    for mode in POLICIES:
        memory = resolve_memory({"mode": mode}, engine.config)
        polled = [poll_replies(engine, s, folder / f"scene-{k}.mp4", memory, fps) for k, s in enumerate(chosen)]
        for confirm in (1, 2, 3):
            row = {"memory": mode, **score(polled, confirm)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("| memory | confirm | recall | false alerts / hour | delay median (s) | delay p95 (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        delay = ("-", "-") if r["delay_median_s"] is None else (f"{r['delay_median_s']:.1f}", f"{r['delay_p95_s']:.1f}")
        print(f"| {r['memory']} | {r['confirm']} | {r['recall']:.2f} | {r['false_alerts_per_hour']:.0f} | "
              f"{delay[0]} | {delay[1]} |")
    if args.json:
        model = Path(args.model).resolve()
        shown = str(model.relative_to(ROOT)) if model.is_relative_to(ROOT) else args.model
        Path(args.json).write_text(json.dumps({"model": shown, "fps": fps, "scenes": len(chosen),
                                               "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
