"""The `videochat-online` command: chat, stream, eval and convert (docs/streaming.md, docs/evaluation.md).
Every option is checked before any model is loaded (`check_*` below); a user error is one line, exit 2.
"""

from __future__ import annotations

import argparse
import math
import queue
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError
from .options import DTYPES, ModelOptions, Parser, WatchOptions, add_config_arg, add_options, from_args, option, run_main
from .settings import DECODERS, MOST, QUESTION_CHARS, WAITING_FRAMES, check_question
from .stream_config import FRAME_BATCH

MAX_NEW_TOKENS = 256  # a chat's or a stream's reply, at most


@dataclass
class ChatRequest:
    model: ModelOptions
    question: str | None = option("the question; omit it to chat turn by turn on stdin", positional=True)
    image: list[str] = option("an image file (repeat for several)", [])
    system: str | None = option("system message (default: the model's)")
    max_new_tokens: int = option("reply length at most", MAX_NEW_TOKENS, positive=True)


@dataclass
class StreamRequest:
    """The options of `stream`; `check_stream` fills the last three fields."""

    stream: WatchOptions  # the model, and the rate and memory options given (the rest: the model's)
    video: str = option("a video file, a folder of frames (with --folder-fps), or a live source: a URL (rtsp://, "
                        "http://, udp:// ...), - for a stream on stdin, camera:N", positional=True, required=True)
    ask: list[str] = option("a question and the time it is asked (repeat for several)", [], metavar="SECONDS:QUESTION")
    watch: list[str] = option("a standing yes/no question, asked every --watch-every seconds; prints when its answer "
                              "changes (repeat for several)", [], metavar="QUESTION")
    watch_every: float = option("seconds of stream between two polls (at most one poll per new frame)", 1.0,
                                positive=True)
    watch_confirm: int = option("polls in a row that must agree before an answer counts (settles, or changes)", 3,
                                positive=True)
    folder_fps: float | None = option("frame rate of a frame folder", positive=True)
    decoder: str = option("the video decoder (docs/speed.md, \"Decoding\")", DECODERS[0], choices=DECODERS)
    realtime: bool = option("play a video file at its own pace, as a live source (frames dropped if the model lags)")
    buffer: int = option("live sources: frames that may wait for the model; one more drops the oldest waiting",
                         WAITING_FRAMES, positive=True)
    stall_seconds: float = option("live sources: with no frame for this long the source counts as ended", 10.0,
                                  positive=True)
    batch_size: int = option("frames per vision-tower batch", FRAME_BATCH, positive=True)
    multi_turn: bool = option("later questions see earlier answers")
    system: str | None = option("system message (default: the model's)")
    max_new_tokens: int = option("reply length at most", MAX_NEW_TOKENS, positive=True)
    show_memory: bool = option("list the frames held at each question")
    json: bool = option("one JSON object per answer")
    max_question_chars: int = option("longest question (--ask, --watch, typed)", QUESTION_CHARS, positive=True)
    source: object = None  # the opened VideoSource; None for a live source (opened once the model is ready)
    live: dict | None = None  # a live source's settings (data/live.py): fps-free LiveSource arguments
    questions: list[tuple[float, str]] = field(default_factory=list)  # --ask, read


@dataclass
class ConvertRequest:
    src: str = option("the checkpoint to read: a folder (this project's or the original InternVL layout) or a hub id",
                      positional=True, required=True)
    out: str = option("a new folder for the checkpoint in this project's layout", positional=True, required=True)
    dtype: str | None = option("default: the source's", choices=DTYPES)


def cmd_chat(request: ChatRequest) -> int:
    from .data.image import load_image

    images = [load_image(p) for p in request.image]
    engine = request.model.load(system_message=request.system)
    tokens, per_image = engine.encode_images(images) if images else (None, [])
    interactive = request.question is None
    history: list[tuple[str, str]] = []
    while True:
        if not interactive:
            if history:
                return 0
            question = request.question
        else:
            try:
                question = input("you> ").strip()
            except EOFError:
                return 0
            if not question:
                continue
        # The images go into the first user message; later turns see them again through the history.
        message = engine.images_message(per_image, question) if images and not history else question
        reply = engine.ask(message, tokens, history, max_new_tokens=request.max_new_tokens)
        print(f"model> {reply.text}" if interactive else reply.text, flush=True)
        history.append((message, reply.text))


def parse_question(text: str, most: int | None = None) -> tuple[float, str]:
    """"12.5:What is the man holding?" -> (12.5, "What is the man holding?"); the question at most `most`
    characters (`check_question`)."""
    time, sep, question = text.partition(":")
    try:
        seconds = float(time)
    except ValueError:
        seconds = None
    if not sep or seconds is None or not question.strip():
        raise InputError(f"--ask {text!r}: write it as SECONDS:QUESTION, e.g. \"12.5:What is the man holding?\"")
    if not math.isfinite(seconds) or seconds < 0 or seconds > MOST["--window-seconds"] * 365:
        raise InputError(f"--ask {text!r}: the question time must be a finite number of seconds >= 0 (a year at most)")
    return seconds, check_question(question, f"--ask {time}:...", most)


def check_chat(args) -> ChatRequest:
    return from_args(ChatRequest, args)


def check_stream(args) -> StreamRequest:
    from .data.live import _address, is_live
    from .data.video import open_video

    r = from_args(StreamRequest, args)
    r.questions = [parse_question(q, r.max_question_chars) for q in r.ask]
    r.watch = [check_question(w, "--watch", r.max_question_chars) for w in r.watch]
    live = is_live(r.video) or r.realtime
    if not r.questions and not r.watch and (not live or r.video == "-"):
        raise InputError("stream: give at least one --ask SECONDS:QUESTION or --watch QUESTION" +
                         ("" if live else " (questions are typed on stdin only while a live source plays)"))
    if live:
        if r.realtime and is_live(r.video):
            raise InputError(f"--realtime {r.video}: is already live; --realtime plays a video file at its pace")
        if r.realtime and not Path(r.video).is_file():
            raise InputError(f"{r.video}: no such video file (--realtime plays a file at its own pace)")
        _address(r.video)  # a camera name's form, and the camera input in this build
        r.live = dict(buffer=r.buffer, stall_seconds=r.stall_seconds, pace=r.realtime)
    else:
        r.source = open_video(r.video, folder_fps=r.folder_fps, decoder=r.decoder)
    return r


def check_convert(args) -> ConvertRequest:
    r = from_args(ConvertRequest, args)
    out = Path(r.out)
    above = next((p for p in out.absolute().parents if p.exists()), None)
    if not out.exists() and above is not None and not above.is_dir():
        raise InputError(f"{out}: cannot create it ({above} is not a directory)")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory; convert writes a checkpoint directory")
    if out.is_dir() and any(out.iterdir()):
        raise InputError(f"{out}: the directory is not empty; convert writes into a new or empty one")
    return r


def read_lines(file, most: int) -> queue.Queue:
    """The questions typed on `file` while a stream plays, from a reader thread: (text, when it was typed), then
    None once the input closes. Bytes that are not UTF-8 are read as U+FFFD; a line over `most` characters is
    refused in one line on stderr and the stream goes on."""
    import time

    lines: queue.Queue = queue.Queue()
    binary = getattr(file, "buffer", file)

    def read():
        try:
            for raw in binary:
                text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
                if not text.strip():
                    continue
                try:
                    lines.put((check_question(text, "typed question", most), time.monotonic()))
                except InputError as err:
                    print(f"error: {err}; not asked", file=sys.stderr, flush=True)
        finally:
            lines.put(None)

    threading.Thread(target=read, daemon=True, name="question-reader").start()
    return lines


def cmd_stream(request: StreamRequest) -> int:
    from tqdm import tqdm

    from .data.video import prefetch
    from .streaming import StreamingSession, TimedQuestion, Watch, answer_along, answer_live

    r = request
    questions = [TimedQuestion(t, text) for t, text in r.questions]
    duration = None if r.source is None else r.source.duration
    for q in questions:
        if duration is not None and q.time > duration:
            print(f"warning: the question at {q.time:g}s comes after the end of {r.video} ({duration:.1f}s): "
                  "it is answered with everything seen", file=sys.stderr)
    engine = r.stream.model.load(system_message=r.system)
    fps, memory = r.stream.resolve(engine.config)
    if r.source is not None and fps > r.source.native_fps:
        print(f"note: --fps {fps:g} is above the {r.source.native_fps:g} fps of {r.video}: each of its frames is taken "
              "once", file=sys.stderr)
        fps = r.source.native_fps
    if r.watch and r.watch_every < 1.0 / fps:
        print(f"note: --watch-every {r.watch_every:g} is shorter than the {1 / fps:g} s between two frames: a watch "
              "is polled once per new frame", file=sys.stderr)
    watches = [Watch(text, max(r.watch_every, 1.0 / fps), r.watch_confirm) for text in r.watch]
    session = StreamingSession(engine, engine.new_memory(memory), system_message=r.system)
    run = dict(batch_size=r.batch_size, remember=r.multi_turn, max_new_tokens=r.max_new_tokens)
    with tqdm(unit="frame", desc="watching", file=sys.stderr, leave=False,
              disable=not sys.stderr.isatty()) as bar:  # a progress bar on a terminal only, never in a pipe
        if r.live is not None:
            from .data.live import open_live

            source = open_live(r.video, fps, **r.live)
            print(f"watching {r.video} live at {fps:g} fps" + ("" if r.video == "-" else
                  "; type a question and Enter to ask it now"), file=sys.stderr)
            typed = None if r.video == "-" else read_lines(sys.stdin, r.max_question_chars)
            answers = answer_live(session, source, questions, watches, typed, on_frame=lambda _: bar.update(),
                                  on_end=lambda line: tqdm.write(line, file=sys.stderr),
                                  on_refused=lambda q, why: tqdm.write(f"error: {why}; not asked", file=sys.stderr),
                                  **run)
        else:
            end = duration if duration is not None else max((q.time for q in questions), default=0.0)
            questions += [TimedQuestion(t, w.question, key=w, remember=False) for w in watches for t in w.times(end)]
            last = max((q.time for q in questions), default=0.0)
            bar.total = None if duration is None else int(min(duration, last) * fps) + 1
            frames = prefetch(r.source.sample(fps, end=last), what=r.video)  # decoded ahead of the tower
            answers = answer_along(session, frames, questions, on_frame=lambda _: bar.update(), **run)
        try:
            for done in answers:
                for line in report(done, r):
                    tqdm.write(line, file=sys.stdout)
        finally:
            if r.live is not None:
                source.close()
    for line in watch_summary(watches, r.json):
        print(line)
    return 0


def watch_summary(watches, as_json: bool) -> list[str]:
    """A line per watch at the end: its settled answer and its changes, or that it never settled."""
    import json

    lines = []
    for w in watches:
        now = None if w.answer is None else "yes" if w.answer else "no"
        if as_json:
            lines.append(json.dumps({"watch": w.question, "summary": True, "answer": now, "settled_at": w.settled_at,
                                     "changes": len(w.events), "polls": w.polls}))
        elif now is None:
            lines.append(f"watch: {w.question}: never settled ({w.polls} polls; {w.confirm} in a row must agree)")
        else:
            lines.append(f"watch: {w.question}: {now} at the end; settled at {w.settled_at:g}s, {len(w.events)} "
                         f"changes over {w.polls} polls")
    return lines


def report(done, r: StreamRequest) -> list[str]:
    """The lines printed for an answer (or a watch's poll: a line only when its answer changes)."""
    import json

    from .streaming import Watch

    if isinstance(done.question.key, Watch):
        watch = done.question.key
        settled = watch.answer is None
        event = watch.observe(done.question.time, done.reply.text)
        if settled and watch.answer is not None:  # the first settled answer: printed once
            said = "yes" if watch.answer else "no"
            return [json.dumps({"watch": done.question.text, "time": watch.settled_at, "answer": said,
                                "settled": True}) if r.json else
                    f"[{watch.settled_at:g}s] watch: {done.question.text} -> {said} (settled)"]
        if event is None:
            return []
        said = "yes" if event.answer else "no"
        return [json.dumps({"watch": done.question.text, "time": event.time, "answer": said,
                            "confirmed_at": event.confirmed_at}) if r.json else
                f"[{event.time:g}s] watch: {done.question.text} -> {said} (confirmed at {event.confirmed_at:g}s)"]
    held = [{"index": f.index, "time": round(f.timestamp, 3), "level": f.level, "tokens": f.num_tokens}
            for f in done.memory]
    if r.json:
        record = {"time": done.question.time, "question": done.question.text, "answer": done.reply.text,
                  "seen": done.seen}
        if done.latency is not None:
            record["latency"] = round(done.latency, 3)
        if r.show_memory:
            record["memory"] = held
        return [json.dumps(record, ensure_ascii=False)]
    lines = [f"[{done.question.time:g}s] Q: {done.question.text}", f"A: {done.reply.text}"]
    if done.latency is not None:
        lines.append(f"   (answered at stream time {done.seen:.1f} s, {done.latency:.2f} s after that frame arrived)")
    if r.show_memory:
        lines.append(f"memory: {len(held)} frames, {sum(h['tokens'] for h in held)} tokens")
        lines += [f"  frame {h['index']:>5}  t={h['time']:>8.2f}s  level {h['level']}  {h['tokens']} tokens"
                  for h in held]
    return lines


def cmd_eval(request) -> int:
    from .eval.runner import exit_status, run

    return exit_status(run(request), request.allow_failures)


def cmd_convert(args) -> int:
    from .model import load_pretrained, save_pretrained

    model, tokenizer = load_pretrained(args.src, dtype=args.dtype)
    out = save_pretrained(model, tokenizer, args.out)
    print(f"wrote {out} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters)")
    return 0


from .serve.command import ServeRequest, check_serve, cmd_serve  # noqa: E402  (the server itself loads in cmd_serve)

COMMANDS = {  # name: (its options, their check, the command, its help)
    "chat": (ChatRequest, check_chat, cmd_chat,
             "ask about images (or plain text); interactive without a question"),
    "stream": (StreamRequest, check_stream, cmd_stream,
               "watch a video as a stream and answer questions at their times"),
    "convert": (ConvertRequest, check_convert, cmd_convert,
                "rewrite a checkpoint (e.g. the original layout) in this project's layout"),
    "serve": (ServeRequest, check_serve, cmd_serve,
              "serve the model over HTTP: OpenAI-compatible chat completions with images and videos"),
}


def build_parser() -> argparse.ArgumentParser:
    from .eval.options import add_eval_args, check_eval_args

    parser = Parser(prog="videochat-online", description="Online video understanding.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (request, check, command, text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=text)
        add_config_arg(command_parser)
        add_options(command_parser, request)
        command_parser.set_defaults(func=command, check=check)
    evaluate = sub.add_parser("eval", help="evaluation on OVBench or another benchmark (stream, window, uniform or "
                                           "recompute protocol)")
    add_eval_args(evaluate)
    evaluate.set_defaults(func=cmd_eval, check=check_eval_args)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_main(lambda: args.func(args.check(args)))  # every option checked before any model is loaded


if __name__ == "__main__":
    sys.exit(main())
