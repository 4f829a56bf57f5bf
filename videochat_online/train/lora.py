"""LoRA adapters for training: which layers get them, and folding them back into plain weights."""

from __future__ import annotations

import torch
from torch import nn


def lora_targets(module: nn.Module, skip: tuple[str, ...] = ("lm_head",)) -> list[str]:
    """Names of the linear layers of a module (the leaf names LoRA matches), except `skip`."""
    return sorted({name.rsplit(".", 1)[-1] for name, m in module.named_modules()
                   if isinstance(m, nn.Linear) and not any(s in name for s in skip)})


LORA_ALPHA_PER_RANK = 2  # lora_alpha = 2 x rank: adapters are scaled by alpha / rank = 2


def merge_lora_state(state: dict[str, torch.Tensor], scaling: float) -> dict[str, torch.Tensor]:
    """A state dict with peft LoRA adapters -> the plain model's (any full state dict: ZeRO-3's gathered one too):
    `X.base_model.model.Y.base_layer.weight` W with `...lora_A.default.weight` A [r, in] and `lora_B` B [out, r]
    becomes `X.Y.weight` = W + scaling * B @ A."""
    merged = {}
    for name, tensor in state.items():
        if ".lora_A." in name or ".lora_B." in name:
            continue
        if ".base_layer." in name and name.endswith(".weight"):
            stem = name[: -len("base_layer.weight")]
            a, b = state.get(stem + "lora_A.default.weight"), state.get(stem + "lora_B.default.weight")
            if a is not None and b is not None:
                tensor = (tensor.float() + scaling * (b.float() @ a.float())).to(tensor.dtype)
        merged[name.replace(".base_model.model.", ".").replace(".base_layer.", ".")] = tensor
    return merged
