"""The `serve` command: its options (one dataclass, as every command's) and the server's start."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..options import ModelOptions, from_args, option
from ..settings import QUESTION_CHARS

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ServeRequest:
    model: ModelOptions
    host: str = option("the address to listen on; another than this machine's loopback needs --api-key", "127.0.0.1")
    port: int = option("the port", 8000, positive=True)
    api_key: str | None = option("the Bearer key every request but /health must carry (default: none, only on "
                                 "127.0.0.1)")
    media_root: str | None = option("the folder whose files file:// URLs may name (default: no files)")
    allow_urls: bool = option("open http(s) URLs of public hosts for image_url and video_url", False)
    allow_private_urls: bool = option("also open loopback and private-network hosts (with --allow-urls)", False)
    max_question_chars: int = option("longest question", QUESTION_CHARS, positive=True)
    max_tokens: int = option("longest reply a request may ask for", 512, positive=True)
    max_media_mb: int = option("largest data: URL, in MB decoded", 64, positive=True)
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

    from .app import ServeLimits, create_app
    from .media import MediaPolicy

    engine = r.model.load(system_message=r.system)
    media = MediaPolicy(r.media_root, r.max_media_mb * 1024 * 1024, r.allow_urls, r.allow_private_urls)
    limits = ServeLimits(r.max_question_chars, r.max_tokens, r.max_media_mb * 1024 * 1024)
    app = create_app(engine, Path(r.model.model).name or r.model.model, media, limits, r.api_key)
    uvicorn.run(app, host=r.host, port=r.port, log_level="info")
    return 0
