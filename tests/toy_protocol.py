"""A toy protocol, written as a user adds one: this file, nothing else (`--protocol toy_protocol:LastSecond`).

`last-second`: each ask answered from a fresh memory holding the frames of the second before it.
"""

from videochat_online.eval.protocols import Protocol

SECONDS = 1.0


class LastSecond(Protocol):
    """a fresh memory per ask: the frames of the second before it (a test protocol)"""

    name = "last-second"

    def ask_frames(self, source, ask):
        return self.frames(source, max(0.0, ask.time - SECONDS), ask.time)
