"""The `serve` command: its options (one dataclass, as every command's) and the server's start."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..options import ModelOptions, from_args, option
from .limits import ServeLimits, SessionLimits

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeRequest:
    model: ModelOptions
    host: str = option("the address to listen on; another than this machine's loopback needs --api-key", "127.0.0.1")
    port: int = option("the port", 8000, positive=True)
    api_key: str | None = option("the Bearer key every request but /health must carry (default: none, only on "
                                 "127.0.0.1)")
    media_root: str | None = option("the folder whose files file:// URLs may name (default: no files)")
    allow_urls: bool = option("open network URLs of public hosts: image_url, video_url and a live session's source",
                              False)
    allow_private_urls: bool = option("also open loopback and private-network hosts (with --allow-urls)", False)
    max_question_chars: int = option("longest question", ServeLimits.max_question_chars, positive=True)
    max_tokens: int = option("longest reply a request may ask for", ServeLimits.max_tokens, positive=True)
    max_media_mb: int = option("largest data: URL, in MB decoded", ServeLimits.max_media_bytes >> 20, positive=True)
    max_upload_mb: int = option("largest frame or MPEG-TS chunk pushed to a session, in MB",
                                ServeLimits.max_upload_bytes >> 20, positive=True)
    max_sessions: int = option("live sessions open at once", SessionLimits.max_sessions, positive=True)
    max_questions: int = option("questions a session may have waiting or being answered",
                                SessionLimits.max_questions, positive=True)
    frame_buffer: int = option("a session's frames waiting for the model before the oldest is dropped",
                               SessionLimits.frame_buffer, positive=True)
    batch_size: int = option("frames through the vision tower at once, all sessions together",
                             SessionLimits.batch_size, positive=True)
    idle_seconds: float = option("close a session no request has touched for this long", SessionLimits.idle_seconds,
                                 positive=True)
    system: str | None = option("system message (default: the model's)")


def check_serve(args) -> ServeRequest:
    r = from_args(ServeRequest, args)
    if r.api_key is None and r.host not in LOCAL_HOSTS and not _loopback(r.host):
        raise InputError(f"--host {r.host}: listening beyond this machine needs --api-key KEY")
    if r.media_root is not None and not Path(r.media_root).is_dir():
        raise InputError(f"--media-root {r.media_root}: no such folder")
    return r


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(r: ServeRequest) -> int:
    import uvicorn

    from .app import create_app
    from .media import MediaPolicy

    engine = r.model.load(system_message=r.system)
    media = MediaPolicy(r.media_root, r.max_media_mb * 1024 * 1024, r.allow_urls, r.allow_private_urls)
    limits = ServeLimits(r.max_question_chars, r.max_tokens, r.max_media_mb << 20, r.max_upload_mb << 20)
    sessions = SessionLimits(r.max_sessions, r.max_questions, r.frame_buffer, r.batch_size, r.idle_seconds)
    app = create_app(engine, Path(r.model.model).name or r.model.model, media, limits, r.api_key, sessions)
    uvicorn.run(app, host=r.host, port=r.port, log_level="info")
    return 0
