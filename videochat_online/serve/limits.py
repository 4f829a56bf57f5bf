"""What a request and the live sessions may ask of the server: the `serve` command's limits and their defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import QUESTION_CHARS, WAITING_FRAMES


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask."""

    max_question_chars: int = QUESTION_CHARS
    max_tokens: int = 512  # the longest reply
    max_media_bytes: int = 64 * 1024 * 1024  # a data: URL's decoded size
    max_upload_bytes: int = 16 * 1024 * 1024  # a frame or chunk pushed to a session


@dataclass(frozen=True)
class SessionLimits:
    """What the live sessions may hold (the `serve` command's options)."""

    max_sessions: int = 16
    max_questions: int = 8  # a session's questions waiting or being answered
    frame_buffer: int = WAITING_FRAMES  # a session's frames waiting for the vision tower before the oldest is dropped
    batch_size: int = 32  # frames through the vision tower at once, all sessions together
    idle_seconds: float = 300.0  # a session no request has touched for this long is closed
    stall_seconds: float = 10.0  # a URL source silent for this long has stalled
    max_history: int = 8  # a session's earlier exchanges kept in its prompt
    max_chunk_buffer: int = 32 * 1024 * 1024  # MPEG-TS bytes pushed and not yet decoded, per session
