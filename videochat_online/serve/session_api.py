"""The live-session endpoints (`/v1/sessions...`, docs/serving.md): each request checks its input and hands it to
the `Scheduler`; answers and events come back through `Outbox`es. The request and reply shapes are the
pydantic models below, which the server's OpenAPI schema (`/openapi.json`, `/docs`) shows."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import numpy as np
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ..data.image import read_image
from ..data.video import decode_size
from ..errors import VideoChatOnlineError
from ..settings import check_question
from ..stream_config import resolve_fps, resolve_memory
from .events import Outbox
from .http_errors import ApiError
from .media import MediaPolicy
from .scheduler import LimitReached, Scheduler, SessionClosed
from .sessions import LiveSession, Question

MOST_FPS = 30.0
IMAGE_FORMATS = ("JPEG", "PNG")


class SessionCreate(BaseModel):
    source: str = Field("push", description='"push" (the client sends frames) or a stream URL the server opens '
                                            "(rtsp, http(s), udp ...; only with --allow-urls)")
    fps: float | None = Field(None, description="frames a second taken from the stream (default: the model's)")
    memory: dict[str, Any] = Field(default_factory=dict, description='the memory policy and its options, e.g. '
                                   '{"mode": "pyramid"} (default: the model\'s)')


class QuestionCreate(BaseModel):
    question: str
    time: float | None = Field(None, description="stream seconds to answer at (default: the newest frame in "
                                                 "memory); a time not reached yet is answered when it is")
    stream: bool = Field(False, description="the reply as server-sent events, a token at a time")
    max_tokens: int | None = Field(None, description="the longest reply (default and most: --max-tokens)")
    wait: bool = Field(True, description="false: answer 202 at once; the answer comes as an event")


class WatchCreate(BaseModel):
    question: str = Field(description="a yes/no question, asked every `every` seconds of stream")
    every: float = Field(1.0, gt=0, description="stream seconds between two polls (at least one frame apart)")
    confirm: int = Field(3, ge=1, description="polls in a row that must agree before an answer counts")


def session_router(scheduler: Scheduler, engine, media: MediaPolicy, most_chars: int, most_tokens: int,
                   most_upload: int) -> APIRouter:
    router = APIRouter(prefix="/v1/sessions", tags=["live sessions"])

    def find(ident: str) -> LiveSession:
        session = scheduler.get(ident)
        if session is None:
            raise ApiError(404, f"no session {ident} (it was closed, or never opened)", code="session_not_found")
        session.touch()
        return session

    _lifecycle_routes(router, scheduler, engine, media, find)
    _frame_routes(router, scheduler, find, most_upload)
    _question_routes(router, scheduler, find, most_chars, most_tokens)
    return router


def _lifecycle_routes(router: APIRouter, scheduler: Scheduler, engine, media: MediaPolicy, find) -> None:
    @router.post("", status_code=201, summary="Open a live session")
    async def open_session(body: SessionCreate):
        if body.fps is not None and not 0 < body.fps <= MOST_FPS:
            raise ApiError(400, f"fps: a number above 0 and at most {MOST_FPS:g}, got {body.fps:g}")
        try:
            source = body.source if body.source == "push" else media.stream_url(body.source)
            settings = resolve_memory(body.memory, engine.config)
            fps = resolve_fps(body.fps, engine.config)
            session = await run_in_threadpool(scheduler.open, source, fps, settings, settings.to_dict())
        except LimitReached as err:
            raise ApiError(429, str(err)) from None
        except VideoChatOnlineError as err:
            raise ApiError(400, str(err).splitlines()[0]) from None
        return session.state

    @router.get("", summary="The open sessions")
    def list_sessions():
        with scheduler.lock:
            sessions = list(scheduler.sessions.values())
        return {"object": "list", "data": [s.state for s in sessions if not s.closing]}

    @router.get("/{ident}", summary="A session's state: frames taken and dropped, memory held by level")
    def state(ident: str):
        return find(ident).state

    @router.delete("/{ident}", summary="Close a session")
    def delete(ident: str):
        scheduler.close(find(ident))
        return {"id": ident, "deleted": True}


def _frame_routes(router: APIRouter, scheduler: Scheduler, find, most_upload: int) -> None:
    @router.post("/{ident}/frames", summary="Push a frame (JPEG or PNG, at a stream time) or an MPEG-TS chunk")
    async def frames(ident: str, frame: UploadFile | None = File(None, description="one JPEG or PNG image"),
                     time: float | None = Form(None, description="the frame's stream time, seconds"),
                     chunk: UploadFile | None = File(None, description="bytes of an MPEG-TS stream, in order")):
        session = find(ident)
        if session.source != "push":
            raise ApiError(409, f"session {ident} reads {session.source}; frames are pushed only to a push session")
        if (frame is None) == (chunk is None):
            raise ApiError(400, "send a field frame (with time) or a field chunk, one of them")
        data = await (frame or chunk).read(most_upload + 1)
        if len(data) > most_upload:
            raise ApiError(413, f"an upload over the limit of {most_upload:,} bytes (--max-upload-mb)")
        if chunk is not None:
            return _push_chunk(session, data, scheduler.limits.max_chunk_buffer)
        if session.chunks is not None:
            raise ApiError(409, f"session {ident} is fed an MPEG-TS stream; push chunks, not frames")
        if time is None or not math.isfinite(time) or time < 0:
            raise ApiError(400, f"time: the frame's stream seconds, a number >= 0 (got {time})")
        try:
            image = await run_in_threadpool(_decoded, data, frame.filename or "frame")
        except VideoChatOnlineError as err:
            raise ApiError(400, str(err).splitlines()[0]) from None
        taken = session.frames.offer(time, image)
        scheduler.wake.set()
        return {"taken": taken, "time": time, "frames": _counts(session)}


def _question_routes(router: APIRouter, scheduler: Scheduler, find, most_chars: int, most_tokens: int) -> None:
    @router.post("/{ident}/questions", summary="Ask a question at the newest frame or at a stream time")
    async def questions(ident: str, body: QuestionCreate):
        session = find(ident)
        question = _question(body, most_chars, most_tokens)
        outbox = Outbox(asyncio.get_running_loop()) if body.wait or body.stream else None
        question.outbox, question.stream = outbox, body.stream
        try:
            scheduler.ask(session, question)
        except LimitReached as err:
            raise ApiError(429, str(err)) from None
        except SessionClosed as err:
            raise ApiError(404, str(err), code="session_not_found") from None
        if outbox is None:
            return _queued(question)
        if body.stream:
            return StreamingResponse(_tokens(outbox), media_type="text/event-stream")
        while True:
            item = await outbox.get()
            if item[0] == "answer":
                return item[1]
            if item[0] == "error":
                raise ApiError(item[2], item[1])

    @router.post("/{ident}/watches", status_code=201, summary="Watch for a change in a standing yes/no question")
    def watches(ident: str, body: WatchCreate):
        session = find(ident)
        try:
            text = check_question(body.question, "the watch", most_chars)
        except VideoChatOnlineError as err:
            raise ApiError(400, str(err)) from None
        ident = session.add_watch(text, body.every, body.confirm)
        scheduler.wake.set()
        return {"id": ident, "question": text, "every": max(body.every, 1.0 / session.fps), "confirm": body.confirm}

    @router.get("/{ident}/events", summary="Server-sent events: answers, watch changes, the source's end and drops")
    async def events(ident: str, request: Request,
                     after: int = Query(0, description="replay the held events numbered above this seq"),
                     follow: bool = Query(True, description="false: the held events only, then the stream ends")):
        session = find(ident)
        outbox, backlog = session.events.subscribe(asyncio.get_running_loop(), after)
        if not follow:
            session.events.unsubscribe(outbox)
            return StreamingResponse(iter([_sse(e) for e in backlog]), media_type="text/event-stream")
        return StreamingResponse(_event_stream(session, outbox, backlog, request), media_type="text/event-stream")




def _decoded(data: bytes, name: str) -> np.ndarray:
    image = read_image(data, name, IMAGE_FORMATS)
    size = decode_size(*image.size)
    if size != image.size:
        image = image.resize(size)
    return np.asarray(image)


def _push_chunk(session: LiveSession, data: bytes, most_bytes: int) -> dict:
    if session.frames.taken and session.chunks is None:
        raise ApiError(409, f"session {session.id} is fed frames; push frames, not chunks")
    if not session.open_chunks(most_bytes).write_chunk(data):
        raise ApiError(429, f"session {session.id}: over {most_bytes:,} bytes wait to be decoded; send more slowly")
    return {"accepted": len(data), "frames": _counts(session)}


def _counts(session: LiveSession) -> dict:
    """The source's frames now: taken at the rate, dropped, waiting."""
    source = session.frames
    return {"taken": source.taken, "dropped": source.dropped, "waiting": source.waiting + len(session.held)}


def _question(body: QuestionCreate, most_chars: int, most_tokens: int) -> Question:
    try:
        text = check_question(body.question, "the question", most_chars)
    except VideoChatOnlineError as err:
        raise ApiError(400, str(err)) from None
    if body.time is not None and (not math.isfinite(body.time) or body.time < 0):
        raise ApiError(400, f"time: stream seconds >= 0, got {body.time}")
    tokens = most_tokens if body.max_tokens is None else body.max_tokens
    if not 1 <= tokens <= most_tokens:
        raise ApiError(400, f"max_tokens: an integer from 1 to {most_tokens}, got {tokens}")
    return Question(text, body.time, tokens)


def _queued(question: Question) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"id": question.id, "status": "queued", "question": question.text, "time": question.time},
                        status_code=202)


def _sse(data: dict) -> str:
    return f"data: {json.dumps(data)}\n\n"


async def _tokens(outbox: Outbox):
    """A question's reply as events: {"type": "token", "text": the new piece}, then the answer (or an error)."""
    sent = ""
    while True:
        item = await outbox.get()
        if item[0] == "token":
            text = item[1].rstrip("\ufffd")  # a character still being decoded waits for its next token
            if len(text) > len(sent) and text.startswith(sent):
                yield _sse({"type": "token", "text": text[len(sent):]})
                sent = text
            continue
        yield _sse({"type": "answer", **item[1]} if item[0] == "answer" else
                   {"type": "error", "error": {"message": item[1], "type": "invalid_request_error"}})
        return


async def _event_stream(session: LiveSession, outbox: Outbox, backlog: list[dict], request: Request):
    try:
        for event in backlog:
            yield _sse(event)
        while True:
            try:
                event = await asyncio.wait_for(outbox.get(), timeout=15)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    return
                yield ": keep-alive\n\n"
                continue
            if event is None:
                return
            yield _sse(event)
    finally:
        session.events.unsubscribe(outbox)
