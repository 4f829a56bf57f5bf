"""Shared fixtures: tiny checkpoints written once per test session (seeded, CPU, a few MB)."""

import json
import os
from pathlib import Path

import pytest
import torch

from videochat_online.eval.ovbench import load_ovbench
from videochat_online.tools.demo_media import synthetic_ovbench_media
from videochat_online.tools.make_tiny import make_tiny

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """Build (and cache) a tiny checkpoint: tiny_dir(layout, llm, shards=1) -> Path."""
    made = {}

    def build(layout: str = "native", llm: str = "phi3", shards: int = 1):
        key = (layout, llm, shards)
        if key not in made:
            made[key] = make_tiny(tmp_path_factory.mktemp(f"tiny-{llm}-{layout}"), layout, llm, seed=0, shards=shards)
        return made[key]

    return build


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory):
    """Build (and cache) a tiny Qwen-VL checkpoint in the transformers layout: tiny_qwen("qwen3-vl") -> Path."""
    from videochat_online.backbones.tiny import make_tiny_qwen

    made = {}

    def build(backbone: str):
        if backbone not in made:
            made[backbone] = make_tiny_qwen(tmp_path_factory.mktemp(f"tiny-{backbone}"), backbone, seed=0)
        return made[backbone]

    return build


@pytest.fixture(scope="session")
def demo_mp4(tmp_path_factory):
    """An 8 s, 10 fps video of a moving ball, frame numbers drawn in (tools/demo_media.py)."""
    from videochat_online.tools.demo_media import write_video

    return write_video(tmp_path_factory.mktemp("cli") / "demo.mp4", seconds=8, fps=10)


_REPO = Path(__file__).resolve().parents[1]
# The real OVBench question files (MIT): the copy the lmms-eval tasks ship, or OVBENCH_ANNO_DIR.
OVBENCH_ANNO = Path(os.environ.get("OVBENCH_ANNO_DIR")
                    or _REPO / "lmms-eval-ovbench" / "tasks" / "ovbench" / "questions")
OVBENCH_SUBSETS = ("ava", "coin", "hirest", "tao")


def ovbench_excerpt(anno: Path, pick) -> Path:
    """`anno`/{subset}.json for each OVBench subset: the entries `pick(entries)` keeps of its shipped file."""
    anno.mkdir(parents=True)
    for subset in OVBENCH_SUBSETS:
        entries = json.loads((OVBENCH_ANNO / f"{subset}.json").read_text())
        (anno / f"{subset}.json").write_text(json.dumps(pick(entries)))
    return anno


@pytest.fixture(scope="session")
def ovbench_sample(tmp_path_factory):
    """ovbench_sample(name, pick) -> (anno_dir, roots): real questions and synthetic media for them.

    `pick(entries)` chooses, from a subset's question file, the entries to keep; the media are demo
    videos and frame folders exactly as long as the kept questions need.
    """

    def build(name, pick):
        root = tmp_path_factory.mktemp(name)
        anno = ovbench_excerpt(root / "anno", pick)
        return anno, synthetic_ovbench_media(load_ovbench(anno), root / "media")

    return build
