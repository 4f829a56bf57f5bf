"""The HTTP server (`videochat-online serve`): FastAPI over one engine (imported by the command only: FastAPI's
handlers need their annotations at module level). Errors are OpenAI's shape,
`{"error": {"message", "type", "param", "code"}}`, with the HTTP status that fits; an API key, when set, is
required on every endpoint but `/health`."""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import VideoChatOnlineError
from .chat_api import chunk, completion, read_request, reply_texts
from .http_errors import ApiError, error_body
from .limits import ServeLimits, SessionLimits
from .media import MediaPolicy
from .metrics import CONTENT_TYPE, metrics_text, registry_for
from .scheduler import Scheduler
from .session_api import session_router


def create_app(engine, model_name: str, media: MediaPolicy, limits: ServeLimits | None = None,
               api_key: str | None = None, sessions: SessionLimits | None = None, batched: bool = True):
    """The app: `GET /health`, `GET /metrics`, `GET /v1/models`, `POST /v1/chat/completions` (text, image_url and
    video_url parts; `stream: true` as server-sent events), and the live sessions (`/v1/sessions...`, served by one
    `Scheduler` thread). Chat completions take the model one at a time, beside the sessions' scheduler."""
    limits = limits or ServeLimits()
    scheduler = Scheduler(engine, sessions or SessionLimits(), engine.system_message, batched=batched)
    registry = registry_for(scheduler)

    @contextlib.asynccontextmanager
    async def lifespan(_):
        yield
        await run_in_threadpool(scheduler.stop)

    app = FastAPI(title="videochat-online", lifespan=lifespan,
                  description="Online video understanding over HTTP: OpenAI-compatible chat completions and live "
                              "sessions that watch streams (docs/serving.md)")
    app.state.scheduler = scheduler
    _error_handlers(app)

    @app.middleware("http")
    async def authorise(request: Request, call_next):
        if api_key is not None and request.url.path != "/health" and \
                request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse(error_body("a valid API key is required (Authorization: Bearer KEY)",
                                           "authentication_error", "invalid_api_key"), status_code=401)
        if scheduler.failure is not None and request.url.path != "/health":
            return JSONResponse(error_body(f"the scheduler failed: {scheduler.failure!r}", "server_error"),
                                status_code=500)
        return await call_next(request)

    app.include_router(session_router(scheduler, engine, media, limits.max_question_chars, limits.max_tokens,
                                      limits.max_upload_bytes))

    @app.get("/metrics", include_in_schema=False)
    def metrics():
        return Response(metrics_text(registry), media_type=CONTENT_TYPE)

    @app.get("/health")
    def health():
        return {"status": "ok" if scheduler.failure is None else "failed", "sessions": len(scheduler.sessions)}

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "videochat-online"}]}

    _chat_routes(app, engine, model_name, media, limits)
    return app


def _chat_routes(app: FastAPI, engine, model_name: str, media: MediaPolicy, limits: ServeLimits) -> None:
    """`POST /v1/chat/completions`: one request at a time uses the model (the sessions' scheduler runs beside)."""
    lock = threading.Lock()

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
        yield f"data: {json.dumps(error_body(message))}\n\n"
    finally:
        scratch.cleanup()
    yield "data: [DONE]\n\n"


def _error_handlers(app: FastAPI) -> None:
    """Every error in OpenAI's shape: ours, FastAPI's validation (400, naming the field) and HTTP's own."""
    @app.exception_handler(ApiError)
    async def api_error(_, err: ApiError):
        return JSONResponse(error_body(err.message, err.kind, err.code), status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "the request"
        return JSONResponse(error_body(f"{where}: {first.get('msg')}"), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_, err: StarletteHTTPException):
        return JSONResponse(error_body(str(err.detail), code="not_found" if err.status_code == 404 else None),
                            status_code=err.status_code)
