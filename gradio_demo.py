"""The gradio demo: play a video (or the webcam) as a live stream, ask at any moment, see the memory.

    python gradio_demo.py [--model PATH_OR_HUB_ID] [--device cuda|cpu] [--host 127.0.0.1] [--port 7860] [--fps 1]
                          [--memory pyramid|window|uniform|recent] [--capacities 2,2,12] ...   (or: bash gradio_demo.sh)

A thin layer over `videochat_online.live.LiveStream` (itself over `StreamingSession`): this file only
lays out the page and turns its events into calls. Each browser session gets its own stream, memory
and conversation; the model is loaded once and shared. Without --model it loads the project's bundled
tiny model, trained on the synthetic world (`models/`), and offers that world's videos as samples.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import sys
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace
from pathlib import Path

import gradio as gr

from gradio.utils import get_upload_folder

from videochat_online.data.live import check_public_url, open_live
from videochat_online.data.video import open_video
from videochat_online.errors import InputError
from videochat_online.live import LiveStream, MemoryView
from videochat_online.memory import POLICIES, MemorySettings
from videochat_online.memory.config import DEFAULT_MODE
from videochat_online.options import Parser, WatchOptions, add_config_arg, add_options, from_args, option, run_main
from videochat_online.settings import QUESTION_CHARS, check_question

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = HERE / "models" / "videochat-online-synthetic-tiny"
SAMPLES = HERE / "assets" / "samples"
MAX_UPLOAD_MB = 200
MAX_SECONDS = 600.0
IDLE_MINUTES = 60.0  # a session is released this long after its last stream started
log = logging.getLogger("videochat_online.demo")


# what the page shows
def memory_html(view: MemoryView | None) -> str:
    """The memory view: thumbnails grouped by level, each with frame number, time and token count."""
    if view is None:
        return "<div id='memory-view'><p>Nothing watched yet.</p></div>"
    parts = [f"<div id='memory-view'><p id='memory-total'><b>{view.mode}</b> memory: "
             f"{view.tokens} / {view.cap} visual tokens</p>"]
    for level, frames in enumerate(view.levels):
        title = f"Level {level}" if len(view.levels) > 1 else "Frames"
        grid = f", {int(frames[0].tokens ** 0.5)}x{int(frames[0].tokens ** 0.5)} tokens a frame" if frames else ""
        parts.append(f"<div class='memory-level'><p>{title}: {len(frames)} frames{grid}</p>"
                     "<div style='display:flex;flex-wrap:wrap;gap:4px'>")
        for f in frames:
            buffer = io.BytesIO()
            f.thumbnail.save(buffer, format="PNG")
            data = base64.b64encode(buffer.getvalue()).decode()
            parts.append(f"<figure class='memory-frame' style='margin:0;text-align:center;font-size:11px'>"
                         f"<img src='data:image/png;base64,{data}' style='height:56px'/>"
                         f"<figcaption>#{f.index} · {f.time:.1f}s · {f.tokens} tok</figcaption></figure>")
        parts.append("</div></div>")
    return "".join(parts) + "</div>"


def clock_text(live: LiveStream | None) -> str:
    if live is None or (live.latest is None and not live.playing):
        return "Stream time: -"
    state = "paused" if live.paused else "playing" if live.playing else "ended" if live.finished else "stopped"
    source = live.source  # a live source: what it took, and dropped while the model was behind
    taken = "" if source is None else f", {source.taken} taken, {source.dropped} dropped while the model was behind"
    return f"Stream time: {live.playhead:.1f} s ({state}, {live.frames_encoded} frames encoded{taken})"


def alerts_text(live: LiveStream | None) -> str:
    """The standing question, its settled answer, and each change, stamped with its stream time."""
    w = None if live is None else live.watching
    if w is None:
        return ""
    state = "not settled yet" if w.answer is None else "yes" if w.answer else "no"
    lines = [f"Watching for: **{html.escape(w.question)}** (now: {state})"]
    lines += [f"- ⚠ **{e.time:.1f} s**: {'yes' if e.answer else 'no'} (confirmed at {e.confirmed_at:.1f} s)"
              for e in live.alerts]
    return "\n".join(lines)


def error_text(err: Exception) -> str:
    return f"**Error:** {html.escape(str(err).splitlines()[0] if str(err) else type(err).__name__)}"


# the app
def budget_matched(settings: MemorySettings, grid_size: int, given: dict) -> MemorySettings:
    """The window and uniform memories sized to the pyramid's token budget (whole frames, at least one), so that
    switching compares memories of one cost; a size given on the command line (`given`) stays."""
    frames = max(1, settings.replace(mode=DEFAULT_MODE).build(grid_size).max_tokens // grid_size ** 2)
    sized = {p.frames_option for p in POLICIES.values() if p.frames_option}
    return settings.replace(**{name: frames for name in sized if name not in given})


def mode_label(mode: str, settings: MemorySettings, grid_size: int) -> str:
    """A memory mode with its budget: "window: 3 frames, 192 tokens"."""
    memory = settings.replace(mode=mode).build(grid_size)
    option = POLICIES.get(mode).frames_option
    frames = getattr(settings, option) if option else None
    return f"{mode}: " + (f"{frames} frames, " if frames else "") + f"{memory.max_tokens} tokens"


def release(live: LiveStream | None) -> None:
    """A browser session ended (its tab closed, or idle past the limit): its stream, memories, thumbnails and
    conversation go."""
    if live is not None:
        live.reset()


class Sessions:
    """The streams of the browser sessions, by gradio's session hash. A closed tab's stream is released on gradio's
    unload event (when its heartbeat stops, seconds later; gradio itself keeps a closed session's State for an
    hour), an idle one when its State expires."""

    def __init__(self):
        self._lock = threading.Lock()
        self._streams: dict[str, LiveStream] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._streams)

    def add(self, key: str, live: LiveStream) -> LiveStream:
        with self._lock:
            self._streams[key] = live
        return live

    def close(self, key: str) -> None:
        with self._lock:
            live = self._streams.get(key)
        release(live)  # released before it leaves the table: a stream counted gone holds nothing
        with self._lock:
            if self._streams.get(key) is live:
                self._streams.pop(key, None)

    def expired(self, live: LiveStream | None) -> None:
        """gradio's State expired (idle past the limit)."""
        release(live)
        with self._lock:
            for key in [k for k, v in self._streams.items() if v is live]:
                del self._streams[key]


def about_model(model: str) -> str | None:
    """The page's line about the model: the bundled one knows only the synthetic world."""
    return BUNDLED_NOTE if Path(model).resolve() == DEFAULT_MODEL.resolve() else None


def inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and path.is_relative_to(folder.resolve())


BUNDLED_NOTE = ("The model is the project's bundled tiny one, trained only on its synthetic world of coloured shapes "
                "on a grey field (docs/synthetic.md): its answers mean something there and nowhere else; the "
                "samples below are from that world.")


class Handlers:
    """What the page's events do, for one model shared by every browser session (one forward at a time)."""

    def __init__(self, engine, settings, fps: float, samples: Path | None, max_upload_mb: float, max_seconds: float,
                 clock, max_question_chars: int, allow_private_urls: bool, sessions: Sessions):
        self.engine, self.settings, self.fps, self.samples, self.clock = engine, settings, fps, samples, clock
        self.max_upload_mb, self.max_seconds, self.max_question_chars = max_upload_mb, max_seconds, max_question_chars
        self.allow_private_urls, self.sessions = allow_private_urls, sessions
        self.lock = threading.Lock()
        self.uploads = Path(get_upload_folder())

    def new_stream(self, request: gr.Request) -> LiveStream:
        live = LiveStream(self.engine, self.settings, fps=self.fps, lock=self.lock, clock=self.clock)
        return self.sessions.add(request.session_hash, live)

    def start(self, path: str | None, live: LiveStream | None, request: gr.Request):
        """Open a video file as a new stream; a problem with it becomes one message in the page."""
        live = live or self.new_stream(request)
        if not path:
            return live, "", [], ""
        try:
            file = Path(path)
            if not (inside(file.resolve(), self.uploads) or inside(file.resolve(), self.samples)):
                raise InputError(f"{file.name}: not a file uploaded here or a sample")
            size_mb = file.stat().st_size / 2 ** 20
            if size_mb > self.max_upload_mb:
                raise InputError(f"{file.name}: {size_mb:.0f} MB is over the {self.max_upload_mb:.0f} MB limit")
            source = open_video(file)
            if source.duration is not None and source.duration > self.max_seconds:
                raise InputError(f"{file.name}: {source.duration:.0f} s is longer than the {self.max_seconds:.0f} s "
                                 "limit")
            first = next(iter(source.sample(self.fps, end=0.0)), None)  # a file that opens but gives no frame
            if first is None:
                raise InputError(f"{file.name}: no frame could be read")
        except (InputError, OSError, ValueError) as err:
            log.warning("upload refused: %s", err)
            # name the file as the user knows it, not by gradio's temporary copy
            return live, error_text(ValueError(str(err).replace(str(path), Path(path).name))), gr.skip(), gr.skip()
        live.open(source, duration=self.max_seconds)
        return live, f"Playing **{html.escape(file.name)}** at {self.fps:g} frames a second.", [], ""

    def play_sample(self, name, live, request: gr.Request):
        return self.start(str(self.samples / name) if name and self.samples else None, live, request)

    def watch_url(self, url, live, request: gr.Request):
        """Open a live stream by URL; one message in the page if it cannot be opened."""
        live = live or self.new_stream(request)
        url = (url or "").strip()
        try:
            check_public_url(url, self.allow_private_urls)
            source = open_live(url, self.fps)
        except InputError as err:
            log.warning("stream refused: %s", err)
            return live, error_text(err), gr.skip(), gr.skip()
        live.open_live(source, duration=self.max_seconds)
        return live, (f"Watching **{html.escape(url)}** live at {self.fps:g} frames a second (for "
                      f"{self.max_seconds:g} s at most)."), [], ""

    def tick(self, live):
        if live is None or not (live.playing or live.camera):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            # never waits for the model (an answer in progress: its frames are encoded next tick) and never
            # generates (watches are polled by their own timer): one session's work does not hold up another's
            live.tick(wait=False, poll=False)
        except (InputError, OSError, ValueError) as err:  # a video that breaks part-way: say so, stop it
            log.warning("stream stopped: %s", err)
            live.reset()
            return None, clock_text(live), memory_html(None), error_text(err), ""
        try:
            view = memory_html(live.memory_view())
        except Exception as err:  # a bug: the page says so on every tick instead of freezing without a word
            log.exception("the memory view failed")
            return live.latest, clock_text(live), gr.skip(), error_text(err), alerts_text(live)
        return live.latest, clock_text(live), view, gr.skip(), alerts_text(live)

    def poll_watch(self, live):
        if live is None or live.watching is None:
            return gr.skip()
        live.poll(wait=False)  # a busy model: the next timer tick polls
        return alerts_text(live)

    def watch(self, question, live):
        if live is None:
            return "**Error:** start a video or the webcam first"
        try:
            live.watch(check_question(question or "", "the watch", self.max_question_chars) if (question or "").strip()
                       else None)
        except InputError as err:
            return error_text(err)
        return alerts_text(live)

    def ask(self, question, chat, live):
        chat = list(chat or [])
        if live is None or live.latest is None:
            yield chat, "", "**Error:** start a video or the webcam first"
            return
        try:
            question = check_question(question or "", "the question", self.max_question_chars)
        except InputError as err:
            yield chat, question, error_text(err)
            return
        try:
            replies = live.ask(question)
            text = next(replies, "")
        except ValueError as err:
            yield chat, "", error_text(err)
            return
        stamp = f"[{live.answers[-1].time:.1f} s] "
        chat += [{"role": "user", "content": stamp + question.strip()}, {"role": "assistant", "content": text}]
        yield chat, "", ""
        for text in replies:
            chat[-1] = {"role": "assistant", "content": text}
            yield chat, "", ""

    def pause(self, live):
        if live:
            live.pause()
        return clock_text(live)

    def resume(self, live):
        if live:
            live.resume()
        return clock_text(live)

    def reset(self, live):
        if live:
            live.reset()
        return live, None, clock_text(live), memory_html(None), [], "", "", "", None

    def switch(self, mode, live):
        if live is None:
            return gr.skip()
        live.mode = mode
        return memory_html(live.memory_view() if live.frames_encoded else None)

    def camera_on(self, live, request: gr.Request):
        live = live or self.new_stream(request)
        live.open_camera()
        return live, "Webcam: frames are taken as they arrive."

    def closed(self, request: gr.Request):
        self.sessions.close(request.session_hash)

    def camera_frame(self, image, live):
        if live is None or image is None or not live.camera:
            return gr.skip(), gr.skip()
        live.push_camera(image)
        return clock_text(live), memory_html(live.memory_view())


def build_app(engine, settings, fps: float, samples: Path | None = SAMPLES, max_upload_mb: float = MAX_UPLOAD_MB,
              max_seconds: float = MAX_SECONDS, tick_seconds: float = 0.5, clock=time.monotonic,
              max_question_chars: int = QUESTION_CHARS, idle_minutes: float = IDLE_MINUTES,
              about_model: str | None = None, allow_private_urls: bool = False,
              sessions: Sessions | None = None) -> gr.Blocks:
    """`clock`: the streams' clock (seconds; a faster one plays faster). A session is released when its tab closes
    or `idle_minutes` after it last started a stream (`sessions` holds them); a question or a watch is at most
    `max_question_chars` long. `about_model`: a line on the page about the model. Only uploaded files and the
    samples are opened; stream URLs of this machine or its network only with `allow_private_urls`."""
    sessions = sessions if sessions is not None else Sessions()
    h = Handlers(engine, settings, fps, samples, max_upload_mb, max_seconds, clock, max_question_chars,
                 allow_private_urls, sessions)
    sample_files = sorted(p.name for p in samples.glob("*.mp4")) if samples and samples.is_dir() else []
    with gr.Blocks(title="VideoChat-Online") as app:
        page = layout(h, sample_files, idle_minutes, about_model)
        wire(app, h, page, tick_seconds)
    return app


def layout(h: Handlers, sample_files: list[str], idle_minutes: float, about_model: str | None) -> SimpleNamespace:
    """The page's components (inside a gr.Blocks)."""
    live = gr.State(None, time_to_live=idle_minutes * 60, delete_callback=h.sessions.expired)  # per session
    gr.Markdown("# VideoChat-Online\nA video plays as a live stream: each frame is encoded as the playhead "
                "reaches it and enters the memory. Ask at any moment; the answer comes from what the memory "
                "holds then." + (f"\n\n*{about_model}*" if about_model else ""), elem_id="about")
    status = gr.Markdown("", elem_id="status")
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Tab("Video"):
                upload_box = gr.File(label=f"Upload a video (up to {h.max_upload_mb:g} MB, {h.max_seconds:g} s)",
                                     elem_id="upload")
                with gr.Row():
                    sample = gr.Dropdown(sample_files, value=sample_files[0] if sample_files else None,
                                         label="or a sample", elem_id="sample")
                    sample_button = gr.Button("Play sample", elem_id="play-sample")
            with gr.Tab("Stream URL"):
                url_box = gr.Textbox(label="A live stream (rtsp://, rtmp://, http(s)://, udp:// ...): frames are "
                                           "taken as they arrive", elem_id="url", submit_btn="Watch")
            with gr.Tab("Webcam"):
                webcam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam")
                camera_button = gr.Button("Watch the webcam")
            player = gr.Image(label="Stream", interactive=False, elem_id="player", height=300)
            clock_box = gr.Markdown("Stream time: -", elem_id="clock")
            with gr.Row():
                pause_button = gr.Button("Pause", elem_id="pause")
                resume_button = gr.Button("Resume", elem_id="resume")
                reset_button = gr.Button("Reset", elem_id="reset")
            mode = gr.Radio([(mode_label(m, h.settings, h.engine.config.grid_size), m) for m in POLICIES],
                            value=h.settings.mode, label="Memory (its most visual tokens)", elem_id="mode")
        with gr.Column(scale=3):
            chat = gr.Chatbot(label="Conversation", elem_id="chat", height=360)
            question = gr.Textbox(label="Ask at this moment", elem_id="question", submit_btn=True)
            watch_box = gr.Textbox(label="Watch for (a yes/no question, asked every second; an alert when its "
                                         "answer changes)", elem_id="watch", submit_btn="Watch")
            alerts = gr.Markdown("", elem_id="alerts")
            memory = gr.HTML(memory_html(None), label="Memory")
    return SimpleNamespace(
        alerts=alerts, camera_button=camera_button, chat=chat, clock_box=clock_box, live=live, memory=memory,
        mode=mode, pause_button=pause_button, player=player, question=question, reset_button=reset_button,
        resume_button=resume_button, sample=sample, sample_button=sample_button, status=status,
        upload_box=upload_box, url_box=url_box, watch_box=watch_box, webcam=webcam)


def wire(app: gr.Blocks, h: Handlers, c: SimpleNamespace, tick_seconds: float) -> None:
    """The page's events, each to its handler and queue."""
    # The events that change or show the stream run one at a time in one queue, so that what they show
    # reaches the page in the order they ran: a tick that drew the memory just before a reset cannot
    # land after the reset's empty view. Questions and webcam frames run beside them.
    stream = dict(concurrency_id="stream", concurrency_limit=1)
    opened = [c.live, c.status, c.chat, c.watch_box]  # a new video: its conversation and watch start empty
    c.upload_box.upload(h.start, [c.upload_box, c.live], opened, show_progress="hidden", **stream)
    c.sample_button.click(h.play_sample, [c.sample, c.live], opened, show_progress="hidden", **stream)
    # a URL can take seconds to answer (or never): it opens beside the stream queue, not in it
    c.url_box.submit(h.watch_url, [c.url_box, c.live], opened, concurrency_id="open", concurrency_limit=None)
    # a tick every `tick_seconds`: no loading overlay on what it refreshes
    gr.Timer(tick_seconds).tick(h.tick, [c.live], [c.player, c.clock_box, c.memory, c.status, c.alerts],
                                show_progress="hidden", **stream)
    # a watch's polls generate: their own timer and queue, so that no tick waits on one
    gr.Timer(tick_seconds).tick(h.poll_watch, [c.live], [c.alerts], show_progress="hidden", concurrency_id="watches",
                                concurrency_limit=1)
    c.watch_box.submit(h.watch, [c.watch_box, c.live], [c.alerts], **stream)
    # answers run one at a time, in the order asked (gradio's queue), each at most the stream's max_new_tokens
    c.question.submit(h.ask, [c.question, c.chat, c.live], [c.chat, c.question, c.status], concurrency_id="answers",
                      concurrency_limit=1)
    c.pause_button.click(h.pause, [c.live], [c.clock_box], **stream)
    c.resume_button.click(h.resume, [c.live], [c.clock_box], **stream)
    c.reset_button.click(h.reset, [c.live], [c.live, c.player, c.clock_box, c.memory, c.chat, c.status, c.alerts,
                                             c.watch_box, c.upload_box], **stream)
    c.mode.change(h.switch, [c.mode, c.live], [c.memory], **stream)
    c.camera_button.click(h.camera_on, [c.live], [c.live, c.status], **stream)
    c.webcam.stream(h.camera_frame, [c.webcam, c.live], [c.clock_box, c.memory], stream_every=1.0 / h.fps)
    app.unload(h.closed)  # a closed tab: its stream goes now


@dataclass
class DemoOptions:
    stream: WatchOptions  # the model (default: the bundled one), its rate and memory
    host: str = option("127.0.0.1 serves this machine only", "127.0.0.1")
    port: int = option("the port served", 7860, positive=True)
    max_upload_mb: float = option("largest upload", MAX_UPLOAD_MB, positive=True)
    max_seconds: float = option("longest video accepted", MAX_SECONDS, positive=True)
    max_question_chars: int = option("longest question", QUESTION_CHARS, positive=True)
    idle_minutes: float = option("a browser session is released this long after its last stream started",
                                 IDLE_MINUTES, positive=True)
    share: bool = option("a public gradio link (off by default)")
    allow_private_urls: bool = option("open stream URLs of this machine and its private network even when serving "
                                      "other hosts (default: only when --host is 127.0.0.1)")


def build_parser() -> Parser:
    parser = Parser(prog="gradio_demo.py", description=__doc__.split("\n")[0])
    add_config_arg(parser)
    add_options(parser, DemoOptions, model=str(DEFAULT_MODEL))
    return parser


def load(watch: WatchOptions) -> tuple:
    """The engine, frame rate and memory settings the options describe: by default the model's own (the rate and
    memory its checkpoint records), with window and uniform sized to the pyramid's budget (`budget_matched`)."""
    engine = watch.model.load()
    fps, settings = watch.resolve(engine.config)
    return engine, fps, budget_matched(settings, engine.config.grid_size, watch.memory)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def serve() -> int:
        o = from_args(DemoOptions, args)  # checked before the model loads
        engine, fps, settings = load(o.stream)
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio's own requests to itself
        app = build_app(engine, settings, fps, max_upload_mb=o.max_upload_mb, max_seconds=o.max_seconds,
                        max_question_chars=o.max_question_chars, idle_minutes=o.idle_minutes,
                        about_model=about_model(o.stream.model.model),
                        allow_private_urls=o.allow_private_urls or o.host in ("127.0.0.1", "localhost", "::1"))
        app.queue().launch(server_name=o.host, server_port=o.port, share=o.share,
                           max_file_size=f"{o.max_upload_mb:g}mb")
        return 0

    return run_main(serve)


if __name__ == "__main__":
    sys.exit(main())
