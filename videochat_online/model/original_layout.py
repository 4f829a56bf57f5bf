"""The original InternVL / VideoChat-Online checkpoint layout (docs/design.md, "Checkpoint layouts"), converted at load time.

Only the vision tower differs from this project's layout. The original InternViT names map to
transformers' `InternVLVisionModel` names one to one, except the fused `attn.qkv`, which is split in
thirds along dim 0 into q, k and v (its output rows are ordered [3, heads, head_dim]).
`mlp1.*` and `language_model.*` keep their names.
"""

from __future__ import annotations

import re

import torch
import transformers
from transformers import AutoConfig, InternVLVisionConfig, PreTrainedConfig
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from ..errors import CheckpointError
from ..stream_config import TRAINING_FPS
from .configuration import VideoChatOnlineConfig

ORIGINAL_MODEL_TYPE = "internvl_chat"

# Embedding and per-layer renames, original -> native (prefix `vision_model.` on both sides).
_EMBEDDING_RENAMES = {
    "embeddings.class_embedding": "embeddings.cls_token",
    "embeddings.position_embedding": "embeddings.position_embeddings",
    "embeddings.patch_embedding.weight": "embeddings.patch_embeddings.projection.weight",
    "embeddings.patch_embedding.bias": "embeddings.patch_embeddings.projection.bias",
}
_LAYER_RENAMES = {
    "attn.proj": "attention.projection_layer",
    "attn.q_norm": "attention.q_norm",
    "attn.k_norm": "attention.k_norm",
    "ls1": "lambda_1",
    "ls2": "lambda_2",
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_ORIGINAL_LAYER = re.compile(r"^vision_model\.encoder\.layers\.(\d+)\.(.+)$")
_NATIVE_LAYER = re.compile(r"^vision_model\.encoder\.layer\.(\d+)\.(.+)$")
_QKV = ("q_proj", "k_proj", "v_proj")


# Config
def _vision_config(original: dict) -> InternVLVisionConfig:
    """An InternViT `vision_config` -> transformers' InternVLVisionConfig."""
    return InternVLVisionConfig(
        hidden_size=original["hidden_size"],
        intermediate_size=original["intermediate_size"],
        num_attention_heads=original["num_attention_heads"],
        num_hidden_layers=original["num_hidden_layers"],
        image_size=original["image_size"],
        patch_size=original["patch_size"],
        num_channels=original.get("num_channels", 3),
        attention_bias=bool(original.get("qkv_bias", True)),
        use_qk_norm=bool(original.get("qk_normalization", False)),
        norm_type=original.get("norm_type", "layer_norm"),
        layer_norm_eps=original.get("layer_norm_eps", 1e-6),
        hidden_act=original.get("hidden_act", "gelu"),
        layer_scale_init_value=original.get("initializer_factor", 0.1),
        initializer_range=original.get("initializer_range", 0.02),
        attention_dropout=original.get("attention_dropout", 0.0),
        hidden_dropout_prob=original.get("dropout", 0.0),
        use_mean_pooling=True,  # InternViT has no final LayerNorm
        use_absolute_position_embeddings=True,
    )


def _llm_config(original: dict, source: str) -> PreTrainedConfig:
    """An `llm_config` -> the transformers config of a causal LM transformers can build itself."""
    architectures = original.get("architectures") or []
    arch = architectures[0] if architectures else None
    known = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    if arch not in known or not hasattr(transformers, arch):
        raise CheckpointError(
            f"{source}: llm_config architecture {arch!r} is not a causal LM that transformers "
            f"{transformers.__version__} provides (e.g. Phi3ForCausalLM, Qwen2ForCausalLM, LlamaForCausalLM)"
        )
    model_type = original.get("model_type") or next(
        t for t, name in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.items() if name == arch)
    if MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type) != arch:
        raise CheckpointError(f"{source}: llm_config model_type {model_type!r} does not match architecture {arch}")
    fields = {k: v for k, v in original.items()
              if k not in ("auto_map", "_name_or_path", "attn_implementation", "_attn_implementation",
                           "model_type", "transformers_version", "use_flash_attn")}
    rope = fields.get("rope_scaling")
    if isinstance(rope, dict) and rope.get("type") == "su":
        # Phi-3 checkpoints of mid-2024 call LongRoPE "su"; transformers 5 validates only "longrope".
        fields["rope_scaling"] = {**rope, "type": "longrope"}
    return AutoConfig.for_model(model_type, **fields)


def config_from_original(original: dict, source: str) -> VideoChatOnlineConfig:
    """An original `internvl_chat` config.json (as a dict) -> VideoChatOnlineConfig."""
    for key in ("vision_config", "llm_config"):
        if not isinstance(original.get(key), dict):
            raise CheckpointError(f"{source}: an internvl_chat config needs a '{key}' object")
    if original.get("use_backbone_lora") or original.get("use_llm_lora"):
        raise CheckpointError(f"{source}: holds unmerged LoRA weights (use_backbone_lora/use_llm_lora); "
                              "merge them into the base weights first")
    vision = _vision_config(original["vision_config"])
    image_size = original.get("force_image_size") or original["vision_config"]["image_size"]
    if image_size != vision.image_size[0]:
        raise CheckpointError(f"{source}: force_image_size {image_size} differs from the vision tower's "
                              f"image_size {vision.image_size[0]}; position-embedding interpolation is not supported")
    return VideoChatOnlineConfig(
        vision_config=vision,
        llm_config=_llm_config(original["llm_config"], source),
        downsample_ratio=original.get("downsample_ratio", 0.5),
        ps_version=original.get("ps_version", "v1"),  # InternVL's default when the field is absent
        select_layer=original.get("select_layer", -1),
        template=original.get("template", "phi3-chat"),
        max_dynamic_patch=original.get("max_dynamic_patch", 12),
        min_dynamic_patch=original.get("min_dynamic_patch", 1),
        use_thumbnail=original.get("use_thumbnail", True),
        vision_drop_path_rate=float(original["vision_config"].get("drop_path_rate") or 0.0),
        # The original layout records no memory (the defaults are the published pyramid) and no rate: the
        # published recipe's 1 fps of video.
        fps=TRAINING_FPS,
    )


def config_to_original(config: VideoChatOnlineConfig) -> dict:
    """The inverse of `config_from_original`, used to write original-layout test checkpoints."""
    v = config.vision_config
    llm = config.llm_config.to_dict()
    return {
        "model_type": ORIGINAL_MODEL_TYPE,
        "architectures": ["InternVLChatModel"],
        "vision_config": {
            "architectures": ["InternVisionModel"],
            "model_type": "intern_vit_6b",
            "hidden_size": v.hidden_size,
            "intermediate_size": v.intermediate_size,
            "num_attention_heads": v.num_attention_heads,
            "num_hidden_layers": v.num_hidden_layers,
            "image_size": v.image_size[0],
            "patch_size": v.patch_size[0],
            "num_channels": v.num_channels,
            "qkv_bias": v.attention_bias,
            "qk_normalization": v.use_qk_norm,
            "norm_type": v.norm_type,
            "layer_norm_eps": v.layer_norm_eps,
            "hidden_act": v.hidden_act,
            "initializer_factor": v.layer_scale_init_value,
            "initializer_range": v.initializer_range,
            "drop_path_rate": config.vision_drop_path_rate,
            "use_flash_attn": False,
        },
        "llm_config": {**llm, "architectures": config.llm_config.architectures
                       or [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[config.llm_config.model_type]]},
        "downsample_ratio": config.downsample_ratio,
        "ps_version": config.ps_version,
        "select_layer": config.select_layer,
        "template": config.template,
        "force_image_size": config.tile_size,
        "max_dynamic_patch": config.max_dynamic_patch,
        "min_dynamic_patch": config.min_dynamic_patch,
        "use_thumbnail": config.use_thumbnail,
        "dynamic_image_size": True,
        "use_backbone_lora": 0,
        "use_llm_lora": 0,
    }


# Weights
def native_name(original_name: str) -> str | tuple[str, str, str]:
    """The native name of an original weight; a fused qkv weight maps to its (q, k, v) names."""
    if original_name.startswith("vision_model.embeddings."):
        suffix = original_name[len("vision_model."):]
        return "vision_model." + _EMBEDDING_RENAMES.get(suffix, suffix)
    match = _ORIGINAL_LAYER.match(original_name)
    if not match:
        return original_name
    layer, rest = match.groups()
    prefix = f"vision_model.encoder.layer.{layer}."
    if rest.startswith("attn.qkv."):
        param = rest[len("attn.qkv."):]
        return tuple(f"{prefix}attention.{proj}.{param}" for proj in _QKV)
    for old, new in _LAYER_RENAMES.items():
        if rest == old or rest.startswith(old + "."):
            return prefix + new + rest[len(old):]
    return prefix + rest  # unknown: kept so that strict loading reports it


def expected_original_shapes(native_shapes: dict[str, torch.Size]) -> dict[str, tuple[int, ...]]:
    """The original names and shapes a model with these native weights is stored under."""
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in to_original({n: torch.empty(s, device="meta") for n, s in native_shapes.items()}).items():
        out[name] = tuple(shape.shape)
    return out


def from_original(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original-layout weights -> native-layout weights."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        target = native_name(name)
        if isinstance(target, tuple):
            for part_name, part in zip(target, torch.chunk(tensor, 3, dim=0)):
                out[part_name] = part.contiguous()
        else:
            out[target] = tensor
    return out


def to_original(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Native-layout weights -> original-layout weights (fusing q, k, v)."""
    embedding = {new: old for old, new in _EMBEDDING_RENAMES.items()}
    layer = {new: old for old, new in _LAYER_RENAMES.items()}
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        match = _NATIVE_LAYER.match(name)
        if name.startswith("vision_model.embeddings."):
            suffix = name[len("vision_model."):]
            out["vision_model." + embedding.get(suffix, suffix)] = tensor
        elif match:
            index, rest = match.groups()
            prefix = f"vision_model.encoder.layers.{index}."
            proj = rest.split(".")[1] if rest.startswith("attention.") else None
            if proj in _QKV:
                if proj == "q_proj":
                    param = rest.split(".", 2)[2]
                    parts = [state_dict[f"vision_model.encoder.layer.{index}.attention.{p}.{param}"] for p in _QKV]
                    out[f"{prefix}attn.qkv.{param}"] = torch.cat(parts, dim=0)
                continue
            for new, old in layer.items():
                if rest == new or rest.startswith(new + "."):
                    out[prefix + old + rest[len(new):]] = tensor
                    break
            else:
                out[prefix + rest] = tensor
        else:
            out[name] = tensor
    return out
