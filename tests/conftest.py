"""Shared fixtures: tiny checkpoints written once per test session (seeded, CPU, a few MB)."""

import pytest
import torch

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
