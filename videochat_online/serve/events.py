"""From the scheduler's thread to the HTTP handlers' event loop: an `Outbox` carries one request's items (a
question's tokens and answer), an `EventLog` a session's events to every `GET .../events` stream."""

from __future__ import annotations

import asyncio
import collections
import threading


class Outbox:
    """Items for one waiting handler, put from any thread, awaited on its event loop (None: nothing more)."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop, self.queue = loop, asyncio.Queue()

    def send(self, item) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop has closed: the server is stopping, nobody waits
            pass

    async def get(self):
        return await self.queue.get()


class EventLog:
    """A session's events, numbered (`seq` from 1), the last `keep` held for streams that connect later."""

    def __init__(self, keep: int = 256):
        self.held: collections.deque[dict] = collections.deque(maxlen=keep)
        self.seq = 0
        self.listeners: set[Outbox] = set()
        self.closed = False
        self._lock = threading.Lock()

    def publish(self, kind: str, **data) -> dict:
        with self._lock:
            self.seq += 1
            event = {"seq": self.seq, "type": kind, **data}
            self.held.append(event)
            for listener in self.listeners:
                listener.send(event)
        return event

    def subscribe(self, loop: asyncio.AbstractEventLoop, after: int = 0) -> tuple[Outbox, list[dict]]:
        """A listener for the events after now, and the held ones numbered above `after`."""
        outbox = Outbox(loop)
        with self._lock:
            if self.closed:
                outbox.send(None)
            else:
                self.listeners.add(outbox)
            return outbox, [e for e in self.held if e["seq"] > after]

    def unsubscribe(self, outbox: Outbox) -> None:
        with self._lock:
            self.listeners.discard(outbox)

    @property
    def watching(self) -> int:
        """Streams connected now."""
        return len(self.listeners)

    def close(self) -> None:
        """The session is gone: every stream ends."""
        with self._lock:
            self.closed = True
            for listener in self.listeners:
                listener.send(None)
            self.listeners.clear()
