"""OpenAI's chat completions over this project's engine: a request's messages -> (system, history, the last user
message's text, images and video) -> a reply, answered the way the CLI answers (`chat` for images, `stream` for a
video: watched once at the model's rate, the question at the video's end or at `video_url.time`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..data.image import load_image
from ..data.video import open_video, prefetch
from ..errors import InputError
from ..settings import check_question
from ..stream_config import FRAME_BATCH, resolve_fps, resolve_memory
from ..streaming import StreamingSession, TimedQuestion, answer_along
from .media import MediaPolicy

PART_TYPES = ("text", "image_url", "video_url")


@dataclass
class Asked:
    """One chat completion request, read and checked."""

    system: str | None
    history: list[tuple[str, str]]
    question: str
    images: list[str] = field(default_factory=list)  # media references (checked URLs or paths)
    video: str | None = None
    video_time: float | None = None  # seconds into the video (None: its end)
    max_tokens: int = 256
    temperature: float = 0.0
    stop: list[str] = field(default_factory=list)


def _text_of(content, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise InputError(f"{where}: only text content is read here")


def read_request(body: dict, media: MediaPolicy, scratch: Path, most_chars: int, most_tokens: int) -> Asked:
    """The request's parts, every value checked (an InputError in one line names the field)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise InputError("messages: a non-empty list of message objects is required")
    system = None
    turns: list[tuple[str, str]] = []
    pending: str | None = None
    for i, m in enumerate(messages[:-1]):
        role = m.get("role")
        if role == "system" and i == 0:
            system = _text_of(m.get("content"), f"messages[{i}]")
        elif role == "user" and pending is None:
            pending = _text_of(m.get("content"), f"messages[{i}]")
        elif role == "assistant" and pending is not None:
            turns.append((pending, _text_of(m.get("content"), f"messages[{i}]")))
            pending = None
        else:
            raise InputError(f"messages[{i}]: roles must be an optional system message, then user and assistant "
                             "turns in turn, ending with a user message")
    last = messages[-1]
    if last.get("role") != "user" or pending is not None:
        raise InputError("messages: the last message must be the user's, after an assistant reply or none")
    asked = Asked(system, turns, "")
    parts = last.get("content")
    parts = [{"type": "text", "text": parts}] if isinstance(parts, str) else parts
    if not isinstance(parts, list) or not parts:
        raise InputError("messages[-1].content: text, or a list of content parts")
    texts = []
    for k, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in PART_TYPES:
            raise InputError(f"messages[-1].content[{k}]: type {kind!r} is not one of {', '.join(PART_TYPES)}")
        if kind == "text":
            texts.append(str(part.get("text", "")))
            continue
        ref = part.get(kind) or {}
        url = ref.get("url") if isinstance(ref, dict) else ref
        if kind == "image_url":
            asked.images.append(media.open(url, scratch))
        elif asked.video is not None:
            raise InputError("messages[-1].content: one video_url a request")
        else:
            asked.video = media.open(url, scratch)
            when = ref.get("time") if isinstance(ref, dict) else None
            if when is not None and (not isinstance(when, (int, float)) or when < 0):
                raise InputError(f"messages[-1].content[{k}].video_url.time: seconds >= 0, got {when!r}")
            asked.video_time = None if when is None else float(when)
    if asked.images and asked.video is not None:
        raise InputError("messages[-1].content: images or a video, not both")
    asked.question = check_question("\n".join(t for t in texts if t), "the question", most_chars)
    tokens = body.get("max_tokens", body.get("max_completion_tokens", most_tokens))
    if not isinstance(tokens, int) or isinstance(tokens, bool) or not 1 <= tokens <= most_tokens:
        raise InputError(f"max_tokens: an integer from 1 to {most_tokens}, got {tokens!r}")
    temperature = body.get("temperature", 0.0)
    if temperature is None:
        temperature = 0.0
    if not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise InputError(f"temperature: a number from 0 to 2, got {temperature!r}")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
        raise InputError("stop: a string or a list of up to 4 strings")
    asked.max_tokens, asked.temperature, asked.stop = tokens, float(temperature), stop
    return asked


def reply_texts(engine, asked: Asked) -> Iterator[str]:
    """The reply as it grows (the text so far after each token), cut at the first stop string."""
    options = {"max_new_tokens": asked.max_tokens}
    if asked.temperature > 0:
        options.update(do_sample=True, temperature=asked.temperature)
    for text in _grow(engine, asked, options):
        cut = min((text.index(s) for s in asked.stop if s in text), default=None)
        if cut is not None:
            yield text[:cut]
            return
        yield text


def _grow(engine, asked: Asked, options: dict) -> Iterator[str]:
    if asked.video is not None:
        yield _video_reply(engine, asked, options)
        return
    tokens, per_image = engine.encode_images([load_image(p) for p in asked.images]) if asked.images else (None, [])
    message = engine.images_message(per_image, asked.question) if asked.images else asked.question
    system = engine.system_message if asked.system is None else asked.system
    yield from engine.generate_stream(engine.render(system, asked.history, message), tokens, **options)


def _video_reply(engine, asked: Asked, options: dict) -> str:
    """The video watched once as `videochat-online stream` watches it, the question at its time."""
    source = open_video(asked.video)
    fps = min(resolve_fps(None, engine.config), source.native_fps)
    session = StreamingSession(engine, engine.new_memory(resolve_memory({}, engine.config)),
                               system_message=asked.system)
    session.history = list(asked.history)
    at = asked.video_time if asked.video_time is not None else (source.duration or 0.0)
    frames = prefetch(source.sample(fps, end=at), what=asked.video)
    for done in answer_along(session, frames, [TimedQuestion(at, asked.question)], batch_size=FRAME_BATCH,
                             **options):
        return done.reply.text
    raise InputError(f"{asked.video}: no frame to answer from")


def completion(model: str, text: str) -> dict:
    """A chat.completion object (no `usage`: a video's prompt is built inside the stream, its length not counted)."""
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                         "finish_reason": "stop"}]}


def chunk(ident: str, model: str, delta: dict, finish: str | None = None) -> dict:
    return {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
