"""Checkpoint loading: the original InternVL layout, this project's layout, and their agreement.

The reference functions below recompute the InternViT forward pass straight from the original
checkpoint tensors (fused qkv, ls1/ls2, norm1/norm2), independently of the key conversion.
"""

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from videochat_online.model import VideoChatOnlineModel, load_pretrained, pixel_shuffle, save_pretrained
from videochat_online.model.checkpoint import expected_tensors, read_checkpoint


def original_tensors(root):
    index = root / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    out = {}
    for name in files:
        with safe_open(str(root / name), framework="pt") as f:
            out.update({k: f.get_tensor(k) for k in f.keys()})
    return out


def reference_attention(x, w, prefix, heads):
    """InternViT attention from a fused qkv weight: rows ordered [3, heads, head_dim]."""
    b, n, c = x.shape
    qkv = F.linear(x, w[prefix + "attn.qkv.weight"], w[prefix + "attn.qkv.bias"])
    qkv = qkv.reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)  # [3, B, H, N, d]
    q, k, v = qkv[0], qkv[1], qkv[2]
    att = (q @ k.transpose(-2, -1)) * (c // heads) ** -0.5
    out = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
    return F.linear(out, w[prefix + "attn.proj.weight"], w[prefix + "attn.proj.bias"])


def reference_internvit(pixels, w, cfg):
    """The original InternViT forward (no final norm), from original-layout tensors."""
    x = F.conv2d(pixels, w["vision_model.embeddings.patch_embedding.weight"],
                 w["vision_model.embeddings.patch_embedding.bias"], stride=cfg["patch_size"])
    x = x.flatten(2).transpose(1, 2)
    cls = w["vision_model.embeddings.class_embedding"].expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1) + w["vision_model.embeddings.position_embedding"]
    eps = cfg["layer_norm_eps"]
    for i in range(cfg["num_hidden_layers"]):
        p = f"vision_model.encoder.layers.{i}."
        h = F.layer_norm(x, x.shape[-1:], w[p + "norm1.weight"], w[p + "norm1.bias"], eps)
        x = x + reference_attention(h, w, p, cfg["num_attention_heads"]) * w[p + "ls1"]
        h = F.layer_norm(x, x.shape[-1:], w[p + "norm2.weight"], w[p + "norm2.bias"], eps)
        h = F.linear(F.gelu(F.linear(h, w[p + "mlp.fc1.weight"], w[p + "mlp.fc1.bias"])),
                     w[p + "mlp.fc2.weight"], w[p + "mlp.fc2.bias"])
        x = x + h * w[p + "ls2"]
    return x


@pytest.fixture(scope="module")
def original(tiny_dir):
    root = tiny_dir("original", "phi3", shards=2)
    model, tokenizer = load_pretrained(root)
    return root, model, tokenizer


def test_original_layout_has_exactly_the_expected_tensors(original):
    root, _, _ = original
    ckpt = read_checkpoint(root)
    assert ckpt.layout == "original"
    expected, _ = expected_tensors(ckpt.config, "original")
    assert set(ckpt.tensors) == set(expected)  # zero missing, zero unexpected
    assert any(name.endswith("attn.qkv.weight") for name in ckpt.tensors)
    assert not any("q_proj" in name for name in ckpt.tensors)


def test_qkv_split_matches_fused_attention(original):
    root, model, _ = original
    w = original_tensors(root)
    heads = model.config.vision_config.num_attention_heads
    x = torch.randn(2, 17, model.config.vision_config.hidden_size)
    for i, layer in enumerate(model.vision_model.encoder.layer):
        ours, _ = layer.attention(x)
        ref = reference_attention(x, w, f"vision_model.encoder.layers.{i}.", heads)
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_vision_tower_matches_reference_internvit(original):
    root, model, _ = original
    w = original_tensors(root)
    cfg = json.loads((root / "config.json").read_text())["vision_config"]
    pixels = torch.randn(2, 3, cfg["image_size"], cfg["image_size"])
    with torch.no_grad():
        ours = model.vision_model(pixel_values=pixels).last_hidden_state
    torch.testing.assert_close(ours, reference_internvit(pixels, w, cfg), rtol=1e-4, atol=1e-4)


def test_pixel_shuffle_v2_concatenates_2x2_blocks_row_major():
    x = torch.randn(1, 4, 6, 3)  # [B, rows, cols, C]
    y = pixel_shuffle(x, 0.5, "v2")
    assert y.shape == (1, 2, 3, 12)
    for r in range(2):
        for c in range(3):
            block = torch.cat([x[0, 2 * r, 2 * c], x[0, 2 * r, 2 * c + 1], x[0, 2 * r + 1, 2 * c],
                               x[0, 2 * r + 1, 2 * c + 1]])
            assert torch.equal(y[0, r, c], block)


def test_encode_frames_gives_pre_projector_grids(original):
    _, model, _ = original
    cfg = model.config
    with torch.no_grad():
        grids = model.encode_frames(torch.randn(3, 3, cfg.tile_size, cfg.tile_size))
    assert grids.shape == (3, cfg.feature_dim, cfg.grid_size, cfg.grid_size)
    tokens = VideoChatOnlineModel.grid_to_tokens(grids[1])
    assert torch.equal(tokens[cfg.grid_size + 2], grids[1, :, 1, 2])  # row-major: (row 1, col 2)
    with pytest.raises(ValueError, match=r"expects pixel values \[B, 3, 224, 224\], got \[3, 3, 64, 64\]"):
        model.encode_frames(torch.randn(3, 3, 64, 64))


def _prompt_and_tokens(model, tokenizer, n_frames=2):
    cfg = model.config
    text = "<|user|>\n" + "".join("Frame: <img>" + "<IMG_CONTEXT>" * cfg.tokens_per_tile + "</img>\n"
                                  for _ in range(n_frames)) + "What happens?<|end|><|assistant|>\n"
    ids = tokenizer(text, return_tensors="pt").input_ids
    torch.manual_seed(1)
    with torch.no_grad():
        grids = model.encode_frames(torch.randn(n_frames, 3, cfg.tile_size, cfg.tile_size))
    tokens = torch.cat([VideoChatOnlineModel.grid_to_tokens(g) for g in grids])
    return ids, tokens


def test_original_and_native_give_identical_logits(original, tmp_path):
    _, model, tokenizer = original
    save_pretrained(model, tokenizer, tmp_path / "native")
    assert json.loads((tmp_path / "native" / "config.json").read_text())["model_type"] == "videochat_online"
    reloaded, tokenizer2 = load_pretrained(tmp_path / "native")
    ids, tokens = _prompt_and_tokens(model, tokenizer)
    assert torch.equal(ids, tokenizer2(tokenizer.decode(ids[0]), return_tensors="pt").input_ids)
    with torch.no_grad():
        a = model(ids, visual_tokens=tokens).logits
        b = reloaded(ids, visual_tokens=tokens).logits
    assert torch.equal(a, b)
    # ... and the visual tokens matter: other frames give other logits.
    with torch.no_grad():
        c = model(ids, visual_tokens=tokens.flip(0)).logits
    assert not torch.allclose(a, c)


def test_visual_token_count_must_match_prompt(original):
    _, model, tokenizer = original
    ids, tokens = _prompt_and_tokens(model, tokenizer)
    with pytest.raises(ValueError, match=r"has 128 <IMG_CONTEXT> tokens but 127 visual tokens"):
        model(ids, visual_tokens=tokens[:-1])


@pytest.mark.parametrize("llm", ["qwen2", "llama"])
def test_other_llm_families_load_in_both_layouts(tiny_dir, llm):
    native, tok = load_pretrained(tiny_dir("native", llm))
    orig, _ = load_pretrained(tiny_dir("original", llm))
    assert type(native.language_model).__name__ == {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}[llm]
    ids, tokens = _prompt_and_tokens(native, tok, n_frames=1)
    with torch.no_grad():
        assert torch.equal(native(ids, visual_tokens=tokens).logits, orig(ids, visual_tokens=tokens).logits)


def test_dtype_and_attention_options(tiny_dir):
    model, _ = load_pretrained(tiny_dir("original", "phi3"), dtype="bf16", attn_implementation="eager")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.language_model.config._attn_implementation == "eager"
    assert model.vision_model.config._attn_implementation == "eager"
    default, _ = load_pretrained(tiny_dir("native", "phi3"))
    assert default.language_model.config._attn_implementation == "sdpa"
    assert default.dtype == torch.float32
