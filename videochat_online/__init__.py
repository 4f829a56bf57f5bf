"""VideoChat-Online: online (streaming) video understanding with a Pyramid Memory Bank."""

__version__ = "0.1.0"
