"""What a request's `image_url` / `video_url` may name, as a local file: a `file://` path under the media root, a
`data:` URL (written to a temporary file), or, when allowed, an http(s) URL on a public host. Anything else is an
InputError in one line, and nothing is opened before its check."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..data.live import check_public_url
from ..errors import InputError

DATA_SUFFIX = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "video/mp4": ".mp4",
               "video/mp2t": ".ts", "video/webm": ".webm", "video/quicktime": ".mov"}


class MediaPolicy:
    """Where media may come from: files under `root` (None: no files), data URLs up to `max_bytes`, and network
    URLs only with `allow_urls` (private and loopback hosts only with `allow_private`)."""

    def __init__(self, root: str | Path | None, max_bytes: int, allow_urls: bool = False,
                 allow_private: bool = False):
        self.root = None if root is None else Path(root).resolve()
        self.max_bytes, self.allow_urls, self.allow_private = max_bytes, allow_urls, allow_private

    def open(self, url: str, scratch: Path) -> str:
        """A path or URL the readers can open for `url`; data URLs are written under `scratch`."""
        if not isinstance(url, str) or not url:
            raise InputError("a media part needs a url")
        scheme = urlparse(url).scheme.lower()
        if scheme == "data":
            return str(self._data(url, scratch))
        if scheme == "file":
            return str(self._file(unquote(urlparse(url).path)))
        if scheme in ("http", "https"):
            return self.stream_url(url)
        raise InputError(f"{url[:80]}: the scheme {scheme or '(none)'!r} is not served; use file:// under the media "
                         "root, data: or (with --allow-urls) http(s)")

    def stream_url(self, url: str) -> str:
        """A network URL the server may open (with --allow-urls; this machine's and private hosts only with
        --allow-private-urls); never a file."""
        if not self.allow_urls:
            raise InputError(f"{url[:80]}: network URLs are not opened unless the server runs with --allow-urls")
        return check_public_url(url, self.allow_private)

    def _file(self, path: str) -> Path:
        if self.root is None:
            raise InputError(f"file://{path}: the server opens no files unless it runs with --media-root")
        resolved = Path(path).resolve()  # file:///an/absolute/path
        if not Path(path).is_absolute() or not resolved.is_relative_to(self.root):
            raise InputError(f"file://{path}: outside the media root")
        if not resolved.is_file():
            raise InputError(f"file://{path}: no such file under the media root")
        return resolved

    def _data(self, url: str, scratch: Path) -> Path:
        header, sep, payload = url[5:].partition(",")
        kind = header.split(";")[0].lower()
        if not sep or ";base64" not in header.lower():
            raise InputError("a data: URL must be base64 (data:TYPE;base64,...)")
        if kind not in DATA_SUFFIX:
            raise InputError(f"a data: URL of type {kind or '(none)'} is not served; use one of "
                             f"{', '.join(DATA_SUFFIX)}")
        if len(payload) * 3 // 4 > self.max_bytes:
            raise InputError(f"a data: URL over the limit of {self.max_bytes:,} bytes")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InputError("a data: URL whose base64 does not decode") from None
        file = scratch / f"data-url-{len(list(scratch.iterdir())) + 1}{DATA_SUFFIX[kind]}"  # named in errors
        file.write_bytes(data)
        return file
