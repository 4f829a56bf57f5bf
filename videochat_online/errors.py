"""Errors a user can act on. The CLI prints their message as one line; nothing else is caught."""


class VideoChatOnlineError(Exception):
    """Base class: the message names the file (or argument) and the problem."""


class CheckpointError(VideoChatOnlineError):
    """A checkpoint directory that cannot be loaded as it is."""


class InputError(VideoChatOnlineError):
    """An image, video or question that cannot be used."""
