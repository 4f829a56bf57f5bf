"""Write a tiny, randomly initialised VideoChat-Online checkpoint with a tokenizer trained offline.

    python -m videochat_online.tools.make_tiny OUT_DIR [--layout original|native] [--llm phi3|qwen2|llama]
    python -m videochat_online.tools.make_tiny OUT_DIR --backbone qwen3-vl|qwen2.5-vl   # backbones/tiny.py

The model keeps every architectural trait of the published one (InternViT layout, pixel shuffle v2,
mlp1, the chosen LLM family with its RoPE variant) at toy sizes: 224px frames give 8x8 feature grids
of width 128 (64 tokens a frame). Tests and every CLI use it where the real weights cannot be had.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import PreTrainedTokenizerFast

from ..conversation import IMG_CONTEXT
from ..model import original_layout
from ..model.checkpoint import CONFIG_NAME, INDEX_NAME, WEIGHTS_NAME, save_pretrained
from ..model.configuration import VideoChatOnlineConfig
from ..model.modeling import VideoChatOnlineModel
from ..model.tiny_tokenizer import train_tokenizer

TEMPLATE_OF = {"phi3": "phi3-chat", "qwen2": "internvl2_5", "llama": "internvl2_5"}


def tiny_config(llm: str, tokenizer: PreTrainedTokenizerFast, llm_sizes: dict | None = None,
                vision_sizes: dict | None = None, **config) -> VideoChatOnlineConfig:
    """The tiny architecture; `llm_sizes` / `vision_sizes` override sub-config fields (e.g. hidden_size) and
    `config` top-level fields (e.g. max_dynamic_patch)."""
    vocab = len(tokenizer)
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    shared = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192, **ids)
    head_dim = 64 // 4
    if llm == "phi3":  # LongRoPE, as Phi-3-mini-128k in the 4B model
        llm_config = dict(model_type="phi3", architectures=["Phi3ForCausalLM"], original_max_position_embeddings=4096,
                          rope_scaling={"type": "longrope", "short_factor": [1.0] * (head_dim // 2),
                                        "long_factor": [1.5] * (head_dim // 2)}, **shared)
    elif llm == "qwen2":
        llm_config = dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], tie_word_embeddings=True, **shared)
    elif llm == "llama":
        llm_config = dict(model_type="llama", architectures=["LlamaForCausalLM"], **shared)
    else:
        raise ValueError(f"unknown llm family {llm!r}; use phi3, qwen2 or llama")
    llm_config.update(llm_sizes or {})
    if llm == "phi3":  # LongRoPE factors: one per rotary frequency
        head_dim = llm_config["hidden_size"] // llm_config["num_attention_heads"]
        llm_config["rope_scaling"] = {**llm_config["rope_scaling"], "short_factor": [1.0] * (head_dim // 2),
                                      "long_factor": [1.5] * (head_dim // 2)}
    vision_config = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         image_size=224, patch_size=14, attention_bias=True, use_mean_pooling=True)
    vision_config.update(vision_sizes or {})
    return VideoChatOnlineConfig(vision_config=vision_config, llm_config=llm_config, template=TEMPLATE_OF[llm],
                                 **{"system_message": "You are a helpful assistant.", "max_dynamic_patch": 6, **config})


def published_4b_config(tokenizer: PreTrainedTokenizerFast) -> VideoChatOnlineConfig:
    """The VideoChat-Online-4B architecture (InternViT-300M + Phi-3-mini-128k), for random-weight benchmarks."""
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    llm_config = dict(model_type="phi3", architectures=["Phi3ForCausalLM"], vocab_size=32064, hidden_size=3072,
                      intermediate_size=8192, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                      max_position_embeddings=131072, original_max_position_embeddings=4096, rms_norm_eps=1e-5,
                      rope_scaling={"type": "longrope", "short_factor": [1.0] * 48, "long_factor": [1.0] * 48},
                      **ids)
    vision_config = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                         image_size=448, patch_size=14, attention_bias=True, layer_scale_init_value=0.1,
                         use_mean_pooling=True)
    return VideoChatOnlineConfig(vision_config=vision_config, llm_config=llm_config, template="phi3-chat",
                                 image_token_id=tokenizer.convert_tokens_to_ids(IMG_CONTEXT))


def make_tiny(out_dir: str | Path, layout: str = "native", llm: str = "phi3", seed: int = 0,
              shards: int = 1, extra_corpus: list[str] | None = None, perturb: bool = True, **sizes) -> Path:
    """Write the tiny checkpoint; `shards` > 1 writes a sharded original-layout checkpoint with an index.
    `extra_corpus` joins the tokenizer's training text; `sizes` go to `tiny_config`. `perturb` randomises the
    vision biases and layer scales (for tests of weight loading); a model to be trained keeps the usual init."""
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(extra_corpus=extra_corpus)
    config = tiny_config(llm, tokenizer, **sizes)
    model = VideoChatOnlineModel(config)
    with torch.no_grad():  # random layer scales and biases, so that a renaming mistake cannot hide
        for name, param in model.named_parameters():
            if perturb and name.startswith("vision_model") and (name.endswith("bias") or "lambda" in name):
                param.normal_(0.0, 0.5)
    config.image_token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT)
    out = Path(out_dir)
    if layout == "native":
        return save_pretrained(model, tokenizer, out)
    if layout != "original":
        raise ValueError(f"unknown layout {layout!r}; use native or original")
    out.mkdir(parents=True, exist_ok=True)
    state = original_layout.to_original({k: v.contiguous() for k, v in model.state_dict().items()})
    if config.llm_config.tie_word_embeddings:
        state.pop("language_model.lm_head.weight", None)
    (out / CONFIG_NAME).write_text(json.dumps(original_layout.config_to_original(config), indent=2))
    names = sorted(state)
    if shards <= 1:
        save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    else:
        weight_map = {}
        for i in range(shards):
            file = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: state[n] for n in names[i::shards]}
            save_file(part, str(out / file), metadata={"format": "pt"})
            weight_map.update({n: file for n in part})
        (out / INDEX_NAME).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2))
    tokenizer.save_pretrained(str(out))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m videochat_online.tools.make_tiny", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--layout", choices=["native", "original"], default="native")
    parser.add_argument("--llm", choices=sorted(TEMPLATE_OF), default="phi3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shards", type=int, default=1, help="shard count (original layout only)")
    parser.add_argument("--backbone", choices=["internvl", "qwen3-vl", "qwen2.5-vl"], default="internvl",
                        help="qwen3-vl or qwen2.5-vl: that family in the transformers layout (--layout and --llm "
                             "are the InternVL family's)")
    args = parser.parse_args(argv)
    if args.backbone != "internvl":
        from ..backbones.tiny import make_tiny_qwen

        out = make_tiny_qwen(args.out_dir, args.backbone, args.seed)
        print(f"wrote a tiny {args.backbone} checkpoint (transformers layout) to {out}")
        return
    out = make_tiny(args.out_dir, args.layout, args.llm, args.seed, args.shards)
    print(f"wrote a tiny {args.llm} checkpoint ({args.layout} layout) to {out}")


if __name__ == "__main__":
    main()
