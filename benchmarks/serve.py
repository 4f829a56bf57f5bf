"""`videochat-online serve` under load: N simulated live streams, each a synthetic scene sent as MPEG-TS over HTTP
in real time, each with questions at random moments and one watch; batched against one-session-at-a-time vision
encoding; and the server's resident memory over a soak.

    python benchmarks/serve.py [--model PATH_OR_ID] [--streams 1 4 16 64] [--seconds 20] [--soak-minutes 30]
                               [--device cuda] [--json out.json]

The server and the stream sender run as their own processes (`videochat-online serve`,
`python -m videochat_online.tools.live_ts --serve`); this script is their client. Per N it prints the frames
encoded per second (all streams), the frames dropped, time to first token (median, p95; from when a question could
be answered: its stream time's frame arrived) and whether every question was answered. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "models" / "videochat-online-synthetic-tiny"
QUESTIONS = ("Where is the {shape} now?", "What colour is the {shape}?", "Is the {shape} moving?")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scene_videos(folder: Path, count: int) -> list[str]:
    """`count` held-out synthetic scenes as folder/scene_K.mp4 (2 fps, 32 s); their shapes."""
    from videochat_online.synthetic.build import scenes
    from videochat_online.synthetic.world import write_scene_video

    shapes = []
    for k, scene in enumerate(scenes(0, 0, count)[1]):
        write_scene_video(scene, folder / f"scene_{k}.mp4", 2)
        shapes.append(scene.shape)
    return shapes


def start(command: list[str], ready_url: str, bound: float = 180.0) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + bound
    while True:
        try:
            if httpx.get(ready_url, timeout=2).status_code < 500:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{command[0]} did not start: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)


def metric(client: httpx.Client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"videochat_{name} "):
            return float(line.split()[1])
    raise KeyError(name)


def events(client: httpx.Client, ident: str) -> list[dict]:
    text = client.get(f"/v1/sessions/{ident}/events", params={"follow": "false"}).text
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def open_streams(client, streams_url: str, shapes: list[str], n: int, fps: float, seconds: float, rng,
                 questions: int = 2) -> tuple[list[str], int]:
    """N sessions on the live streams, each with one watch and `questions` questions at random stream times."""
    from concurrent.futures import ThreadPoolExecutor

    def session(k: int) -> str:  # opened together: each waits for its stream to open
        r = client.post("/v1/sessions", json={"source": f"{streams_url}/scene_{k % len(shapes)}.ts", "fps": fps})
        r.raise_for_status()
        return r.json()["id"]

    with ThreadPoolExecutor(16) as pool:
        idents = list(pool.map(session, range(n)))
    asked = 0
    for k, ident in enumerate(idents):
        shape = shapes[k % len(shapes)]
        client.post(f"/v1/sessions/{ident}/watches", json={"question": f"Is the {shape} still in view?"}) \
            .raise_for_status()
        for _ in range(questions):
            at = round(rng.uniform(1.0, seconds - 1.0), 1)
            client.post(f"/v1/sessions/{ident}/questions", json={
                "question": rng.choice(QUESTIONS).format(shape=shape), "time": at, "wait": False}).raise_for_status()
            asked += 1
    return idents, asked


def run_streams(client, streams_url: str, shapes: list[str], n: int, fps: float, seconds: float, seed: int) -> dict:
    rng = random.Random(seed)
    encoded = metric(client, "frames_encoded_total")
    started = time.monotonic()
    idents, asked = open_streams(client, streams_url, shapes, n, fps, seconds, rng)
    deadline = started + 3 * seconds + 120
    while True:  # every source ended and every question answered (or the bound passed)
        states = [client.get(f"/v1/sessions/{i}").json() for i in idents]
        if all(s["state"] != "live" and s["questions"]["waiting"] == 0 for s in states) or \
                time.monotonic() > deadline:
            break
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    logs = [events(client, i) for i in idents]
    answers = [e for log in logs for e in log if e["type"] == "answer"]
    ttft = [a["time_to_first_token"] for a in answers if a["time_to_first_token"] is not None]
    result = {
        "streams": n, "fps": fps, "seconds": seconds, "wall_s": round(elapsed, 1),
        "frames_encoded_per_s": round((metric(client, "frames_encoded_total") - encoded) / elapsed, 1),
        "frames_taken": sum(s["frames"]["taken"] for s in states),
        "frames_dropped": sum(s["frames"]["dropped"] for s in states),
        "questions": asked, "answered": len(answers), "all_answered": len(answers) == asked,
        "ttft_median_s": None if not ttft else round(statistics.median(ttft), 3),
        "ttft_p95_s": None if not ttft else round(quantile(ttft, 0.95), 3),
        "watch_events": sum(e["type"] == "watch" for log in logs for e in log),
    }
    for ident in idents:
        client.delete(f"/v1/sessions/{ident}")
    return result


def batched_ratio(model: str, device: str | None, sessions: int = 16, frames: int = 64) -> dict:
    """The same frames through the tower for `sessions` push sessions, batched across sessions or one session at
    a time: frames encoded per second of each, and their ratio (in this process, no HTTP)."""
    from videochat_online.backbones import load_engine
    from videochat_online.data.video import open_video
    from videochat_online.serve.limits import SessionLimits
    from videochat_online.serve.scheduler import Scheduler
    from videochat_online.stream_config import resolve_memory

    engine = load_engine(model, device=device)
    video = list(open_video(ROOT / "assets" / "samples" / "synth_test_0000.mp4").sample(2))[:frames]
    rates = {}
    for batched in (True, False, True, False):  # each twice, the best kept: the first runs warm up
        scheduler = Scheduler(engine, SessionLimits(max_sessions=sessions, frame_buffer=frames), batched=batched)
        settings = resolve_memory({}, engine.config)
        opened = [scheduler.open("push", 2.0, settings, settings.to_dict()) for _ in range(sessions)]
        begun = time.perf_counter()
        for frame in video:
            for session in opened:
                session.frames.offer(frame.timestamp, frame.image)
        scheduler.wake.set()
        while scheduler.stats.frames_encoded < sessions * len(video):
            time.sleep(0.001)
        rate = sessions * len(video) / (time.perf_counter() - begun)
        rates[batched] = max(rates.get(batched, 0.0), rate)
        scheduler.stop()
    return {"sessions": sessions, "frames_each": len(video), "batched_frames_per_s": round(rates[True], 1),
            "one_at_a_time_frames_per_s": round(rates[False], 1), "ratio": round(rates[True] / rates[False], 2)}


def soak(client, server: subprocess.Popen, streams_url: str, shapes: list[str], n: int, minutes: float,
         fps: float, seed: int) -> dict:
    """`n` looping live streams for `minutes`, a question to a random session every few seconds; the server's
    resident memory sampled every 10 s (the first 2 minutes are its warm-up)."""
    import psutil

    rng = random.Random(seed)
    process = psutil.Process(server.pid)
    idents, _ = open_streams(client, streams_url, shapes, n, fps, 30.0, rng, questions=0)
    samples, asked, answered, started = [], 0, 0, time.monotonic()
    next_sample = started
    while time.monotonic() - started < minutes * 60:
        ident = rng.choice(idents)
        r = client.post(f"/v1/sessions/{ident}/questions", json={"question": rng.choice(QUESTIONS).format(
            shape="shape"), "wait": False})
        asked += r.status_code == 202
        time.sleep(rng.uniform(1.0, 4.0))
        if time.monotonic() >= next_sample:
            samples.append((time.monotonic() - started, process.memory_info().rss / 2**20))
            next_sample += 10
    time.sleep(5)
    states = [client.get(f"/v1/sessions/{i}").json() for i in idents]
    answered = sum(s["questions"]["answered"] for s in states)
    warm = [mb for t, mb in samples if t >= 120] or [mb for _, mb in samples]
    for ident in idents:
        client.delete(f"/v1/sessions/{ident}")
    return {"streams": n, "minutes": minutes, "questions": asked, "answered": answered,
            "frames_taken": sum(s["frames"]["taken"] for s in states),
            "frames_dropped": sum(s["frames"]["dropped"] for s in states),
            "rss_mb_after_warmup": round(warm[0], 1), "rss_mb_max": round(max(warm), 1),
            "rss_mb_end": round(warm[-1], 1), "rss_growth_mb": round(warm[-1] - warm[0], 1),
            "rss_samples": [(round(t), round(mb, 1)) for t, mb in samples]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(BUNDLED))
    parser.add_argument("--device", default=None)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--seconds", type=float, default=20.0, help="each stream's length")
    parser.add_argument("--fps", type=float, default=1.0, help="the sessions' frame rate")
    parser.add_argument("--soak-minutes", type=float, default=0.0, help="then a soak this long (0: none)")
    parser.add_argument("--soak-streams", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    shapes = scene_videos(folder, max(args.streams + [args.soak_streams]))
    send_port, loop_port, port = free_port(), free_port(), free_port()
    python = [sys.executable, "-m", "videochat_online.tools.live_ts", "--serve", str(folder)]
    senders = [start([*python, "--port", str(send_port), "--seconds", str(args.seconds)],
                     f"http://127.0.0.1:{send_port}/none"),
               start([*python, "--port", str(loop_port), "--loop"], f"http://127.0.0.1:{loop_port}/none")]
    command = [sys.executable, "-m", "videochat_online.cli", "serve", "--model", args.model, "--port", str(port),
               "--allow-urls", "--allow-private-urls", "--idle-seconds", "7200",
               "--max-sessions", str(max(args.streams + [args.soak_streams])), "--frame-buffer", "16"]
    if args.device:
        command += ["--device", args.device]
    server = start(command, f"http://127.0.0.1:{port}/health")
    model = Path(args.model).resolve()
    shown = str(model.relative_to(ROOT)) if model.is_relative_to(ROOT) else args.model  # no machine paths in figures
    results: dict = {"model": shown, "device": args.device or "default", "cpu_count": os.cpu_count()}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            results["streams"] = []
            for n in args.streams:
                row = run_streams(client, f"http://127.0.0.1:{send_port}", shapes, n, args.fps, args.seconds,
                                  args.seed)
                results["streams"].append(row)
                print(json.dumps(row), flush=True)
            if args.soak_minutes > 0:
                results["soak"] = soak(client, server, f"http://127.0.0.1:{loop_port}", shapes, args.soak_streams,
                                       args.soak_minutes, args.fps, args.seed)
                print(json.dumps({k: v for k, v in results["soak"].items() if k != "rss_samples"}), flush=True)
    finally:
        for process in (server, *senders):
            process.terminate()
            process.wait(timeout=30)
    results["batched_vs_one_at_a_time"] = batched_ratio(args.model, args.device)
    print(json.dumps(results["batched_vs_one_at_a_time"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
