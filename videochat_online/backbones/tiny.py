"""Tiny, randomly initialised Qwen3-VL and Qwen2.5-VL checkpoints in the transformers layout, with processor
files and a chat template (`python -m videochat_online.tools.make_tiny OUT --backbone qwen3-vl`).

Every trait a stream depends on is kept at toy sizes: temporal patches of 2 frames, 2x2 spatial merging, 3-D
M-RoPE (interleaved for Qwen3-VL), DeepStack (Qwen3-VL) and windowed attention with seconds-scaled temporal ids
(Qwen2.5-VL). 64-pixel frames give 4x4 merged tokens a patch.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..model.tiny_tokenizer import train_tokenizer

VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
FRAME_SIZE = 64

# ChatML with the vision placeholders, as the published Qwen-VL templates write a message's parts.
_CONTENT = ("{%- if m.content is string %}{{ m.content }}{%- else %}{%- for c in m.content %}"
            "{%- if c.type == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
            "{%- elif c.type == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
            "{%- elif c.type == 'text' %}{{ c.text }}{%- endif %}{%- endfor %}{%- endif %}")
_DEFAULT_SYSTEM = ("{%- if messages[0].role != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant."
                   "<|im_end|>\\n' }}{%- endif %}")
_TURNS = ("{%- for m in messages %}{{ '<|im_start|>' + m.role + '\\n' }}" + _CONTENT + "{{ '<|im_end|>\\n' }}"
          "{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}")

BACKBONES = {
    # name: (model_type, chat template, image mean and std, video processor class)
    "qwen3-vl": ("qwen3_vl", _TURNS, [0.5] * 3, [0.5] * 3, "Qwen3VLVideoProcessor", "Qwen3VLProcessor"),
    "qwen2.5-vl": ("qwen2_5_vl", _DEFAULT_SYSTEM + _TURNS, CLIP_MEAN, CLIP_STD, "Qwen2VLVideoProcessor",
                   "Qwen2_5_VLProcessor"),
}


def tiny_qwen_config(backbone: str, tokenizer, text_sizes: dict | None = None, vision_sizes: dict | None = None,
                     **streaming):
    """The tiny architecture of a Qwen-VL family; `text_sizes` / `vision_sizes` override sub-config fields (e.g.
    hidden_size), `streaming` the config's `streaming` object (frame_size, fps)."""
    from transformers import Qwen2_5_VLConfig, Qwen3VLConfig

    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in zip(
        ("vision_start_token_id", "vision_end_token_id", "image_token_id", "video_token_id"), VISION_TOKENS)}
    text = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=8192,
                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"))
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, patch_size=8, spatial_merge_size=2,
                  temporal_patch_size=2, out_hidden_size=64)
    text.update(text_sizes or {})
    vision.update(vision_sizes or {})
    stream = {"frame_size": FRAME_SIZE, **streaming}
    pairs = text["head_dim"] // 2  # rotary pairs, split over (temporal, row, column) as the published 24, 20, 20
    sections = [pairs - 2 * (3 * pairs // 8), 3 * pairs // 8, 3 * pairs // 8]
    if backbone == "qwen3-vl":
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": sections,
                                   "mrope_interleaved": True}
        vision.setdefault("num_position_embeddings", (stream["frame_size"] // vision["patch_size"]) ** 2)
        vision.setdefault("deepstack_visual_indexes", [0])
        return Qwen3VLConfig(text_config=text, vision_config=vision, streaming=stream, **ids)
    if backbone == "qwen2.5-vl":
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": sections}
        vision.update(window_size=48, fullatt_block_indexes=[1], tokens_per_second=2)  # 3x3 windows on 4x4: padded
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, streaming=stream, **ids)
    raise ValueError(f"unknown backbone {backbone!r}; use {', '.join(BACKBONES)}")


def processor_files(backbone: str) -> dict[str, dict]:
    """preprocessor_config.json and video_preprocessor_config.json, with the published checkpoints' keys."""
    _, _, mean, std, video_class, processor_class = BACKBONES[backbone]
    shared = {"patch_size": 8, "temporal_patch_size": 2, "merge_size": 2, "image_mean": mean, "image_std": std,
              "processor_class": processor_class, "size": {"shortest_edge": 32 * 32, "longest_edge": 512 * 512}}
    return {"preprocessor_config.json": {"image_processor_type": "Qwen2VLImageProcessor", **shared},
            "video_preprocessor_config.json": {"video_processor_type": video_class, **shared}}


def make_tiny_qwen(out_dir: str | Path, backbone: str = "qwen3-vl", seed: int = 0,
                   extra_corpus: list[str] | None = None, text_sizes: dict | None = None,
                   vision_sizes: dict | None = None, **streaming) -> Path:
    """Write the tiny checkpoint of `backbone` (qwen3-vl or qwen2.5-vl) to `out_dir` (`extra_corpus`: text for its
    tokenizer; the sizes and `streaming` as `tiny_qwen_config`'s)."""
    from transformers import AutoModelForImageTextToText

    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; use {', '.join(BACKBONES)}")
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(extra_corpus=extra_corpus)
    tokenizer.add_special_tokens({"additional_special_tokens": VISION_TOKENS})
    tokenizer.chat_template = BACKBONES[backbone][1]
    config = tiny_qwen_config(backbone, tokenizer, text_sizes, vision_sizes, **streaming)
    model = AutoModelForImageTextToText.from_config(config)
    out = Path(out_dir)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    for name, content in processor_files(backbone).items():
        (out / name).write_text(json.dumps(content, indent=2))
    return out
