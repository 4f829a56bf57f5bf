"""The VideoChat-Online model, its config, and checkpoint loading."""

from .checkpoint import load_pretrained, save_pretrained
from .configuration import VideoChatOnlineConfig
from .modeling import VideoChatOnlineModel, pixel_shuffle

__all__ = ["VideoChatOnlineConfig", "VideoChatOnlineModel", "load_pretrained", "pixel_shuffle", "save_pretrained"]
