"""A third backbone from this one file: registered by `@register`, picked by its checkpoint's model_type, and run
by `videochat-online stream` end to end, memory policies and all. It "sees" each frame as a grid of mean colours
and answers with what memory holds, so the test can tell that frames, memory and prompt reached it."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from videochat_online.backbones import BACKBONES, register
from videochat_online.chat import Reply
from videochat_online.cli import main


@dataclass
class ToyConfig:
    grid_size: int = 2
    fps: float | None = None
    memory: dict | None = None


@register
class ToyBackbone:
    name = "toy"
    model_types = ("toy_vlm",)
    frames_per_patch = 1
    kv_cache = "dynamic"

    def __init__(self, config: ToyConfig):
        self.config, self.system_message = config, None

    @classmethod
    def from_pretrained(cls, path: str, **options):
        return cls(ToyConfig(**json.loads((Path(path) / "config.json").read_text()).get("toy", {})))

    @staticmethod
    def patch_time(first, last):
        return first

    def new_memory(self, settings):
        return settings.build(self.config.grid_size)

    def encode_frames(self, frames):
        g = self.config.grid_size
        images = [np.asarray(Image.fromarray(np.asarray(f)).resize((g, g), Image.Resampling.BOX)) for f in frames]
        return torch.tensor(np.stack(images), dtype=torch.float32).permute(0, 3, 1, 2)  # [B, 3, g, g]

    def video_prompt(self, system, history, held, question):
        lines = [f"frame {f.index} at {f.timestamp:.1f}s, {f.num_tokens} tokens" for f in held]
        return "\n".join([*lines, question]), [f.tokens for f in held]

    def generate(self, prompt, visual, max_new_tokens=256, prefix_cache=None, **options):
        brightness = float(torch.cat(visual).mean()) if visual else 0.0
        text = f"{len(visual or [])} frames, brightness {brightness:.0f}"
        return Reply(text, [], prompt)

    def choose(self, prompt, visual, replies, prefix_cache=None):
        return Reply(replies[0], [], prompt)

    def generate_stream(self, prompt, visual, max_new_tokens=256, **options):
        yield self.generate(prompt, visual).text


def test_a_toy_backbone_from_one_file_streams_end_to_end(demo_mp4, tmp_path, capsys):
    checkpoint = tmp_path / "toy"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"model_type": "toy_vlm", "toy": {"grid_size": 2, "fps": 1}}))
    assert "toy" in BACKBONES
    assert main(["stream", str(demo_mp4), "--model", str(checkpoint), "--memory", "window", "--window", "3",
                 "--ask", "2:What now?", "--ask", "7:And now?", "--json", "--show-memory"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["time"] for r in records] == [2.0, 7.0]
    assert [m["index"] for m in records[1]["memory"]] == [5, 6, 7]  # 1 fps, the checkpoint's; the last 3 frames
    assert all(m["tokens"] == 4 for m in records[1]["memory"])  # its 2x2 grid
    assert records[0]["answer"].startswith("3 frames, brightness ") and records[0]["answer"] != "3 frames, brightness 0"
