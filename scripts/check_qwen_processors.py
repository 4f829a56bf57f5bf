"""Where torchvision is installed (transformers' Qwen-VL processors need it): AutoProcessor loads the tiny Qwen-VL
checkpoints `make_tiny --backbone` writes, and its whole video path (resize, rescale, normalise, patch layout)
gives the pixels this project's stream lays out, for both families. Prints the figures; exits 1 on a mismatch.

    python scripts/check_qwen_processors.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from videochat_online.backbones.qwen_layout import QwenLayout, patchify
from videochat_online.backbones.tiny import make_tiny_qwen


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args(argv)
    from transformers import AutoModelForImageTextToText, AutoProcessor

    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("qwen3-vl", "qwen2.5-vl"):
            folder = make_tiny_qwen(Path(tmp) / name, name)
            processor = AutoProcessor.from_pretrained(str(folder))
            config = AutoModelForImageTextToText.from_pretrained(str(folder)).config
            video = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
            layout = QwenLayout.of(name, config, processor.tokenizer, folder, None)
            ours = patchify(layout.pixel_values(list(video)), layout.patch_size, layout.merge_size)
            theirs = processor.video_processor(videos=[video], return_tensors="pt", do_sample_frames=False,
                                               cap_pixels_per_frame=False)["pixel_values_videos"]
            diff = float((theirs - ours).abs().max()) if theirs.shape == ours.shape else float("inf")
            worst = max(worst, diff)
            print(f"{name}: {type(processor).__name__} ({type(processor.image_processor).__name__}, "
                  f"{type(processor.video_processor).__name__}); pixels {tuple(theirs.shape)}, max |diff| {diff:.2e}")
    return 0 if worst < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
