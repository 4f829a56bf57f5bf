"""The HTTP server (`videochat-online serve`): FastAPI over one engine (imported by the command only: FastAPI's
handlers need their annotations at module level). Errors are OpenAI's shape,
`{"error": {"message", "type", "param", "code"}}`, with the HTTP status that fits; an API key, when set, is
required on every endpoint but `/health`."""

from __future__ import annotations

import json
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from ..errors import VideoChatOnlineError
from ..settings import QUESTION_CHARS
from .chat_api import chunk, completion, read_request, reply_texts
from .media import MediaPolicy


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask."""

    max_question_chars: int = QUESTION_CHARS
    max_tokens: int = 512  # the longest reply
    max_media_bytes: int = 64 * 1024 * 1024  # a data: URL's decoded size


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code


def error_body(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def create_app(engine, model_name: str, media: MediaPolicy, limits: ServeLimits = ServeLimits(),
               api_key: str | None = None):
    """The app: `GET /health`, `GET /v1/models`, `POST /v1/chat/completions` (text, image_url and video_url parts;
    `stream: true` as server-sent events). One request at a time uses the model."""
    app = FastAPI(title="videochat-online", description="Online video understanding over HTTP (docs/serving.md)")
    lock = threading.Lock()

    @app.exception_handler(ApiError)
    async def api_error(_, err: ApiError):
        return JSONResponse(error_body(err.status, err.message, err.kind, err.code), status_code=err.status)

    @app.middleware("http")
    async def authorise(request: Request, call_next):
        if api_key is not None and request.url.path != "/health" and \
                request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse(error_body(401, "a valid API key is required (Authorization: Bearer KEY)",
                                           "authentication_error", "invalid_api_key"), status_code=401)
        return await call_next(request)

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "videochat-online"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ApiError(400, f"the request body is not JSON ({err})") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        scratch = tempfile.TemporaryDirectory(prefix="videochat-serve-")
        def refused(err: Exception) -> ApiError:  # a data: URL's file is named as the client sent it
            return ApiError(400, str(err).splitlines()[0].replace(f"{scratch.name}/", ""))

        try:
            asked = read_request(body, media, Path(scratch.name), limits.max_question_chars, limits.max_tokens)
        except VideoChatOnlineError as err:
            scratch.cleanup()
            raise refused(err) from None
        if body.get("stream"):
            return StreamingResponse(_events(engine, asked, model_name, lock, scratch), media_type="text/event-stream")
        def answer() -> str:
            with lock:
                text = ""
                for text in reply_texts(engine, asked):
                    pass
                return text

        try:
            text = await run_in_threadpool(answer)  # the event loop stays free for other requests
        except VideoChatOnlineError as err:
            raise refused(err) from None
        finally:
            scratch.cleanup()
        return completion(model_name, text)

    return app


def _events(engine, asked, model_name: str, lock: threading.Lock, scratch):
    """Server-sent events: a role chunk, a chunk per new piece of text, a finish chunk, then `[DONE]`; an error
    after the stream began is an error event in OpenAI's shape."""
    import uuid

    ident = f"chatcmpl-{uuid.uuid4().hex}"
    yield f"data: {json.dumps(chunk(ident, model_name, {'role': 'assistant', 'content': ''}))}\n\n"
    sent = ""
    try:
        with lock:
            for text in reply_texts(engine, asked):
                text = text.rstrip("\ufffd")  # a character still being decoded waits for its next token
                if len(text) > len(sent) and text.startswith(sent):
                    yield f"data: {json.dumps(chunk(ident, model_name, {'content': text[len(sent):]}))}\n\n"
                    sent = text
        yield f"data: {json.dumps(chunk(ident, model_name, {}, 'stop'))}\n\n"
    except VideoChatOnlineError as err:
        message = str(err).splitlines()[0].replace(f"{scratch.name}/", "")
        yield f"data: {json.dumps(error_body(400, message))}\n\n"
    finally:
        scratch.cleanup()
    yield "data: [DONE]\n\n"
