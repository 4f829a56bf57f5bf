"""Tiny, randomly initialised Qwen3-VL and Qwen2.5-VL checkpoints in the transformers layout, with processor
files and a chat template (`make_tiny OUT --backbone qwen3-vl`).

Every trait a stream depends on is kept at toy sizes: temporal patches of 2 frames, 2x2 spatial merging, 3-D
M-RoPE (interleaved for Qwen3-VL), DeepStack (Qwen3-VL) and windowed attention with seconds-scaled temporal ids
(Qwen2.5-VL). 64-pixel frames give 4x4 merged tokens a patch.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .tokenizer import train_tokenizer

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


def tiny_qwen_config(backbone: str, tokenizer, **streaming):
    """The tiny architecture of a Qwen-VL family (`streaming`: the config's `streaming` object, e.g. fps)."""
    from transformers import Qwen2_5_VLConfig, Qwen3VLConfig

    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in zip(
        ("vision_start_token_id", "vision_end_token_id", "image_token_id", "video_token_id"), VISION_TOKENS)}
    text = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=8192,
                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"))
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, patch_size=8, spatial_merge_size=2,
                  temporal_patch_size=2, out_hidden_size=64)
    stream = {"frame_size": FRAME_SIZE, **streaming}
    if backbone == "qwen3-vl":  # mrope sections: a third each of head_dim / 2 rotary pairs, interleaved
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3],
                                   "mrope_interleaved": True}
        vision.update(num_position_embeddings=64, deepstack_visual_indexes=[0])
        return Qwen3VLConfig(text_config=text, vision_config=vision, streaming=stream, **ids)
    if backbone == "qwen2.5-vl":
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
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
                   extra_corpus: list[str] | None = None, **streaming) -> Path:
    """Write the tiny checkpoint of `backbone` (qwen3-vl or qwen2.5-vl) to `out_dir`."""
    from transformers import AutoModelForImageTextToText

    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; use {', '.join(BACKBONES)}")
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(extra_corpus=extra_corpus)
    tokenizer.add_special_tokens({"additional_special_tokens": VISION_TOKENS})
    tokenizer.chat_template = BACKBONES[backbone][1]
    model = AutoModelForImageTextToText.from_config(tiny_qwen_config(backbone, tokenizer, **streaming))
    out = Path(out_dir)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    for name, content in processor_files(backbone).items():
        (out / name).write_text(json.dumps(content, indent=2))
    return out
