"""One model, many live sessions: the `Scheduler` thread is the only one that runs the model. Each turn it

1. encodes the frames waiting in all sessions through the vision tower together (up to `batch_size`, shared
   evenly among the sessions with frames, each session's oldest first; frames a session cannot take in time are
   dropped oldest-first by its queue and counted),
2. begins the question whose turn it is in each session with none being answered (a question at a stream time
   waits until every frame up to it is in memory; no later frame enters before it begins),
3. advances every reply in progress by one token, the sessions in turn: a long reply delays the others by one
   token a turn, never by its whole length,

and closes the sessions a request asked to close or that went idle. Nothing here knows about HTTP."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from ..data.live import FrameQueue, LiveSource
from ..errors import InputError
from ..quantiles import median_p95
from ..streaming import StreamingSession, push_together
from .limits import SessionLimits
from .sessions import LiveSession, Question, Reply

CLOSED = "closed"


class SessionClosed(InputError):
    """A request to a session closed meanwhile."""


class LimitReached(InputError):
    """A request over one of the `SessionLimits` (too many sessions, too many questions waiting)."""


class Stats:
    """Totals over the server's life, for /metrics."""

    def __init__(self):
        self.frames_encoded = 0
        self.frames_dropped_closed = 0  # dropped by sessions since closed (the open ones count their own)
        self.tokens = 0
        self.answers = 0
        self.ttft: deque[float] = deque(maxlen=1000)  # seconds from asked to first token, the latest answers
        self.decode: deque[tuple[int, float]] = deque(maxlen=100)  # (tokens, seconds) of the latest replies
        self.batches = 0

    def tokens_per_second(self) -> float:
        tokens, seconds = sum(n for n, _ in self.decode), sum(s for _, s in self.decode)
        return tokens / seconds if seconds > 0 else 0.0

    def ttft_quantiles(self) -> tuple[float, float] | None:
        return median_p95(self.ttft)


class Scheduler:
    """The sessions of one engine and the thread that serves them (module docstring)."""

    def __init__(self, engine, limits: SessionLimits | None = None, system_message: str | None = None,
                 batched: bool = True, clock=time.monotonic):
        """`batched` off: each session's frames go through the tower alone (the comparison the benchmark makes)."""
        self.engine, self.limits = engine, limits or SessionLimits()
        self.system_message, self.batched, self.clock = system_message, batched, clock
        self.sessions: dict[str, LiveSession] = {}
        self.stats = Stats()
        self.lock = threading.Lock()  # the sessions' table
        self.wake = threading.Event()
        self.stopping = False
        self.failure: BaseException | None = None
        self._turn = 0
        self._refreshed = -math.inf
        self.thread = threading.Thread(target=self._run, daemon=True, name="serve-scheduler")
        self.thread.start()

    # what requests do
    def open(self, source: str, fps: float, memory, memory_shown: dict) -> LiveSession:
        """A new session: `source` "push" (frames from the client) or a URL already checked."""
        with self.lock:
            if len(self.sessions) >= self.limits.max_sessions:
                raise LimitReached(f"the server holds {len(self.sessions)} sessions, its limit (--max-sessions); "
                                   "close one first")
        if source == "push":
            frames = FrameQueue("pushed frames", fps, self.limits.frame_buffer, stall_seconds=None)
        else:
            frames = LiveSource(source, fps, self.limits.frame_buffer, stall_seconds=self.limits.stall_seconds)
        streaming = StreamingSession(self.engine, self.engine.new_memory(memory), system_message=self.system_message)
        session = LiveSession(streaming, frames, source, fps, memory_shown, self.limits.max_questions, self.clock)
        with self.lock:
            if len(self.sessions) >= self.limits.max_sessions:  # another came first
                frames.close()
                raise LimitReached(f"the server holds {len(self.sessions)} sessions, its limit (--max-sessions)")
            self.sessions[session.id] = session
        self.wake.set()
        return session

    def get(self, ident: str) -> LiveSession | None:
        with self.lock:
            session = self.sessions.get(ident)
        return None if session is None or session.closing else session

    def ask(self, session: LiveSession, question: Question) -> None:
        with session.lock:
            if session.closing:
                raise SessionClosed(f"no session {session.id} (it was closed: {session.closing})")
            if session.waiting_questions >= session.most_questions:
                raise LimitReached(f"session {session.id} has {session.waiting_questions} questions waiting, its "
                                   "limit (--max-questions)")
            (session.now.append if question.time is None else session.timed.push)(question)
            session.touch()
        self.wake.set()

    def close(self, session: LiveSession, why: str = CLOSED) -> None:
        """Close a session (done in the scheduler's next turn; a GET then answers 404)."""
        session.closing = session.closing or why
        self.wake.set()

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()
        self.thread.join(timeout=30)
        for session in list(self.sessions.values()):
            self._retire(session, "the server stopped")

    # the thread
    def _run(self) -> None:
        try:
            while not self.stopping:
                with self.lock:
                    sessions = list(self.sessions.values())
                self._turn += 1
                k = self._turn % len(sessions) if sessions else 0
                sessions = sessions[k:] + sessions[:k]  # who goes first changes every turn
                worked = self._close_due(sessions)
                sessions = [s for s in sessions if not s.closing]
                worked |= self._encode(sessions)
                worked |= self._begin(sessions)
                worked |= self._step(sessions)
                if worked or self.clock() - self._refreshed > 0.25:  # an idle server's states change slowly
                    for session in sessions:
                        self._report_source(session)
                        session.refresh()
                    self._refreshed = self.clock()
                if not worked:
                    self.wake.wait(0.01)
                    self.wake.clear()
        except BaseException as err:  # the server answers 500 from now on, with this
            self.failure = err
            raise

    def _encode(self, sessions: list[LiveSession]) -> bool:
        """Step 1: the frames waiting, through the tower as one batch (or one per session when not batched)."""
        pushes, room = [], self.limits.batch_size
        waiting = [s for s in sessions if s.frames.waiting or s.held]
        for i, session in enumerate(waiting):
            share = max(1, room // (len(waiting) - i))
            frames = session.take_frames(share)
            if frames:
                pushes.append((session.streaming, frames))
                session.newest_arrival = frames[-1].arrived
                room -= len(frames)
            if room <= 0:
                break
        if not pushes:
            return False
        for group in ([pushes] if self.batched else [[p] for p in pushes]):
            push_together(group)
            self.stats.batches += 1
        self.stats.frames_encoded += sum(len(frames) for _, frames in pushes)
        return True

    def _begin(self, sessions: list[LiveSession]) -> bool:
        """Step 2: each idle session's next question, begun (its prompt and first token)."""
        worked = False
        for session in sessions:
            if session.reply is not None:
                continue
            question = session.next_question()
            if question is None:
                continue
            last = session.streaming.last_frame
            tokens = session.streaming.ask_stream(question.text, remember=question.watch is None,
                                                  max_new_tokens=question.max_tokens)
            session.reply = Reply(question, tokens, None if last is None else last[1], self.clock(), self._turn)
            self._advance(session)
            worked = True
        return worked

    def _step(self, sessions: list[LiveSession]) -> bool:
        """Step 3: one token of every reply begun before this turn (one begun now has had its first token: a
        question that came during this turn begins next turn, before any reply begun now can end)."""
        active = [s for s in sessions if s.reply is not None and s.reply.turn < self._turn]  # begun last turn or before
        for session in active:
            self._advance(session)
        return bool(active)

    def _advance(self, session: LiveSession) -> None:
        reply = session.reply
        try:
            text = next(reply.tokens)
        except StopIteration:
            self._finish(session)
            return
        except (InputError, RuntimeError, ValueError) as err:  # too long for its context; the model failed on it
            session.reply = None
            self._refuse(session, reply.question, str(err).splitlines()[0] if str(err) else repr(err))
            return
        now = self.clock()
        if reply.first_token_at is None:
            reply.first_token_at = now
            self.stats.ttft.append(now - reply.question.ready_at)
        reply.text, reply.count = text, reply.count + 1
        if reply.question.stream and reply.question.outbox is not None:
            reply.question.outbox.send(("token", text))

    def _finish(self, session: LiveSession) -> None:
        reply, question, now = session.reply, session.reply.question, self.clock()
        session.reply = None
        self.stats.tokens += reply.count
        if reply.first_token_at is not None and reply.count > 1:
            self.stats.decode.append((reply.count - 1, now - reply.first_token_at))
        if question.watch is not None:
            self._observe(session, question, reply)
            return
        session.answered += 1
        del session.streaming.history[:-self.limits.max_history]
        self.stats.answers += 1
        first = reply.first_token_at
        answer = {"id": question.id, "question": question.text, "answer": reply.text, "time": reply.seen,
                  "asked_time": question.time, "latency": now - question.ready_at,
                  "time_to_first_token": None if first is None else first - question.ready_at,
                  "tokens": reply.count, "asked_at": question.asked_at, "ready_at": question.ready_at,
                  "started_at": reply.started_at, "finished_at": now}
        session.events.publish("answer", **answer)
        if question.outbox is not None:
            question.outbox.send(("answer", answer))

    def _observe(self, session: LiveSession, question: Question, reply: Reply) -> None:
        watch = question.watch
        before = watch.answer
        event = watch.observe(question.time, reply.text)
        with session.lock:
            ident = next((k for k, w in session.watches.items() if w is watch), None)
        if event is not None:
            session.events.publish("watch", watch=ident, question=watch.question,
                                   answer="yes" if event.answer else "no", time=event.time,
                                   confirmed_at=event.confirmed_at, settled=False)
        elif before is None and watch.answer is not None:
            session.events.publish("watch", watch=ident, question=watch.question,
                                   answer="yes" if watch.answer else "no", time=watch.settled_at,
                                   confirmed_at=watch.settled_at, settled=True)

    def _refuse(self, session: LiveSession, question: Question, message: str) -> None:
        session.events.publish("error", id=question.id, question=question.text, message=message)
        if question.outbox is not None:
            question.outbox.send(("error", message, 400))

    def _report_source(self, session: LiveSession) -> None:
        """The source's end (ended, stalled, failed) once, and frames it dropped at most once a second, as events."""
        source = session.frames
        if source.dropped > session.dropped_reported and self.clock() - session.dropped_at >= 1.0:
            session.events.publish("dropped", dropped=source.dropped, new=source.dropped - session.dropped_reported,
                                   taken=source.taken, time=source.newest)
            session.dropped_reported, session.dropped_at = source.dropped, self.clock()
        if source.end is not None and not session.source_reported:
            session.source_reported = True
            session.events.publish("source", state=source.end, taken=source.taken, dropped=source.dropped,
                                   summary=source.summary())

    def _close_due(self, sessions: list[LiveSession]) -> bool:
        now, worked = self.clock(), False
        for session in sessions:
            busy = session.events.watching or session.reply is not None or session.now or \
                any(q.watch is None for *_, q in session.timed.heap)
            if busy:
                session.touch()
            elif now - session.last_active > self.limits.idle_seconds:
                session.closing = session.closing or f"idle for {self.limits.idle_seconds:g} s"
            if session.closing:
                self._retire(session, session.closing)
                worked = True
        return worked

    def _retire(self, session: LiveSession, why: str) -> None:
        session.closing = session.closing or why  # from now on a question to it is refused
        with self.lock:
            self.sessions.pop(session.id, None)
        if session.reply is not None:
            session.reply.tokens.close()
            waiting = [session.reply.question]
        else:
            waiting = []
        with session.lock:
            waiting += [*session.now, *(q for *_, q in session.timed.heap)]
            session.now.clear()
        for question in waiting:
            if question.outbox is not None:
                question.outbox.send(("error", f"session {session.id} was closed ({why})", 409))
        session.frames.close()
        if session.chunks is not None:
            session.chunks.close_writing()
        self.stats.frames_dropped_closed += session.frames.dropped
        session.events.publish("closed", reason=why)
        session.events.close()
        session.streaming.reset()
        session.reply, session.held = None, []
