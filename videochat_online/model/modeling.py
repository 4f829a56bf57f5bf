"""The VideoChat-Online model: vision tower, pixel shuffle, projector ``mlp1`` and a causal LLM.

Read top to bottom, this is the data path of docs/design.md, "The model":

    pixel_values [B, 3, S, S]
      -> vision tower (transformers' InternVLVisionModel)   [B, 1 + P*P, Cv]
      -> drop CLS, to a grid                                 [B, P, P, Cv]
      -> pixel shuffle (ratio r)                             [B, P*r, P*r, Cv/r^2] = [B, g, g, C]
      -> ``encode_frames`` returns it channel-first          [B, C, g, g]   (the memory bank's input)
      -> flattened row-major, any number of frames           [N, C]
      -> ``project`` (mlp1)                                  [N, D]
      -> spliced into the prompt at <IMG_CONTEXT> positions  [1, L, D]
      -> causal LLM
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import InternVLVisionModel, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING
from transformers.models.internvl.modeling_internvl import InternVLVisionLayer

from .configuration import VideoChatOnlineConfig


def pixel_shuffle(x: torch.Tensor, ratio: float = 0.5, version: str = "v2") -> torch.Tensor:
    """Trade spatial resolution for channels: [B, W, H, C] -> [B, W*r, H*r, C/r^2]; each output cell concatenates
    the channels of a (1/r x 1/r) block of input cells, in InternVL's order."""
    b, w, h, c = x.shape
    x = x.reshape(b, w, int(h * ratio), int(c / ratio))  # [B, W, H*r, C/r]
    x = x.permute(0, 2, 1, 3).contiguous()  # [B, H*r, W, C/r]
    x = x.reshape(b, int(h * ratio), int(w * ratio), int(c / ratio**2))  # [B, H*r, W*r, C/r^2]
    if version == "v2":
        x = x.permute(0, 2, 1, 3).contiguous()  # [B, W*r, H*r, C/r^2]: back to row-major order
    return x


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero a residual branch for a random subset of samples, rescaling the rest."""
    if rate == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - rate)  # [B, 1, 1]
    return x * keep / (1.0 - rate)


class VisionLayer(InternVLVisionLayer):
    """transformers' InternViT layer with stochastic depth on its two residual branches (same weights, same names)."""

    def __init__(self, config, drop_path_rate: float = 0.0):
        super().__init__(config)
        self.drop_path_rate = drop_path_rate

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        attention_output, _ = self.attention(self.layernorm_before(hidden_states))
        hidden_states = hidden_states + drop_path(self.lambda_1 * attention_output, self.drop_path_rate, self.training)
        layer_output = self.dropout(self.mlp(self.layernorm_after(hidden_states)))
        if self.lambda_2 is not None:
            layer_output = self.lambda_2 * layer_output
        return hidden_states + drop_path(layer_output, self.drop_path_rate, self.training)


class VideoChatOnlineModel(PreTrainedModel):
    config_class = VideoChatOnlineConfig
    config: VideoChatOnlineConfig
    base_model_prefix = "videochat_online"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["VisionLayer"]

    def __init__(self, config: VideoChatOnlineConfig):
        super().__init__(config)
        self.vision_model = InternVLVisionModel(config.vision_config)
        vision = config.vision_config
        self.vision_model.encoder.layer = nn.ModuleList(VisionLayer(vision) for _ in range(vision.num_hidden_layers))
        self.set_vision_drop_path(config.vision_drop_path_rate)
        c, d = config.feature_dim, config.llm_hidden_size
        # Module indices 0, 1, 3 match the original checkpoints' `mlp1.{0,1,3}` keys.
        self.mlp1 = nn.Sequential(nn.LayerNorm(c), nn.Linear(c, d), nn.GELU(), nn.Linear(d, d))
        # The LLM class itself, not AutoModelForCausalLM.from_config: that starts its own DeepSpeed ZeRO-3
        # initialisation, which fails inside ours (from_pretrained's) and on the meta device.
        self.language_model = MODEL_FOR_CAUSAL_LM_MAPPING[type(config.llm_config)](config.llm_config)
        self.post_init()

    def set_vision_drop_path(self, rate: float) -> None:
        """Stochastic depth of the vision layers, rising linearly from 0 at the first to `rate` at the last."""
        layers = self.vision_model.encoder.layer
        self.config.vision_drop_path_rate = rate
        for i, layer in enumerate(layers):
            layer.drop_path_rate = rate * i / max(1, len(layers) - 1)

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    # Vision: frames -> feature grids -> LLM-width tokens
    def encode_frames(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Frames [B, 3, S, S] -> pre-projector feature grids [B, C, g, g] (16x16x4096 for the 4B model)."""
        expected = (3, self.config.tile_size, self.config.tile_size)
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(f"encode_frames expects pixel values [B, {', '.join(map(str, expected))}], "
                             f"got {list(pixel_values.shape)}")
        param = self.mlp1[1].weight
        pixel_values = pixel_values.to(device=param.device, dtype=self.vision_model.dtype)
        if self.config.select_layer == -1:
            hidden = self.vision_model(pixel_values=pixel_values).last_hidden_state
        else:
            out = self.vision_model(pixel_values=pixel_values, output_hidden_states=True)
            hidden = out.hidden_states[self.config.select_layer]
        hidden = hidden[:, 1:, :]  # [B, P*P, Cv]: drop CLS
        b, n, cv = hidden.shape
        p = int(n**0.5)
        grid = hidden.reshape(b, p, p, cv)  # [B, P, P, Cv]
        grid = pixel_shuffle(grid, self.config.downsample_ratio, self.config.ps_version)  # [B, g, g, C]
        return grid.permute(0, 3, 1, 2).contiguous()  # [B, C, g, g]

    @staticmethod
    def grid_to_tokens(grid: torch.Tensor) -> torch.Tensor:
        """One frame's grid [C, h, w] -> tokens [h*w, C], row-major."""
        c, h, w = grid.shape
        return grid.reshape(c, h * w).transpose(0, 1)

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        """Pre-projector tokens [..., C] -> LLM-width tokens [..., D]."""
        first = self.mlp1[0].weight
        return self.mlp1(tokens.to(device=first.device, dtype=first.dtype))

    def tokens_from_pixels(self, pixel_values: torch.Tensor, grid_sizes: torch.Tensor | None = None) -> torch.Tensor:
        """Tiles or frames [F, 3, S, S], each pooled to its grid side `grid_sizes[f]` -> tokens [N, C], in order
        (a frozen vision tower runs without autograd; the projector after it still learns)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and any(
                p.requires_grad for p in self.vision_model.parameters())):
            grids = self.encode_frames(pixel_values)  # [F, C, g, g]
        sizes = [self.config.grid_size] * len(grids) if grid_sizes is None else [int(s) for s in grid_sizes]
        if len(sizes) != len(grids):
            raise ValueError(f"{len(grids)} pictures but {len(sizes)} grid sizes")
        return torch.cat([self.grid_to_tokens(grid if size == grid.shape[-1] else
                                              torch.nn.functional.adaptive_avg_pool2d(grid, size))
                          for grid, size in zip(grids, sizes)])

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Tiles [T, 3, S, S] -> pre-projector tokens [T * g*g, C], tile after tile."""
        grids = self.encode_frames(pixel_values)  # [T, C, g, g]
        t, c, g, _ = grids.shape
        return grids.reshape(t, c, g * g).transpose(1, 2).reshape(t * g * g, c)

    # Language: splice visual tokens into the prompt, run or generate
    def embed_prompt(self, input_ids: torch.Tensor, visual_tokens: torch.Tensor | None) -> torch.Tensor:
        """Token ids [B, L] + pre-projector visual tokens [N, C] -> input embeddings [B, L, D]: the N visual tokens
        fill the <IMG_CONTEXT> positions in reading order, and their count must match."""
        embeds = self.get_input_embeddings()(input_ids)  # [B, L, D]
        slots = input_ids == self.image_token_id
        n_slots = int(slots.sum())
        n_visual = 0 if visual_tokens is None else int(visual_tokens.shape[0])
        if n_slots != n_visual:
            raise ValueError(f"the prompt has {n_slots} <IMG_CONTEXT> tokens but {n_visual} visual tokens were given")
        if n_visual:
            projected = self.project(visual_tokens).to(embeds.dtype)  # [N, D]
            embeds = embeds.masked_scatter(slots.unsqueeze(-1).to(embeds.device), projected)
        return embeds

    @property
    def image_token_id(self) -> int:
        if self.config.image_token_id is None:
            raise ValueError("config.image_token_id is unset: load the model with its tokenizer "
                             "(videochat_online.model.load_pretrained) or set it from tokenizer.")
        return self.config.image_token_id

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                visual_tokens: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                pixel_values: torch.Tensor | None = None, grid_sizes: torch.Tensor | None = None,
                **kwargs) -> CausalLMOutputWithPast:
        """Logits (and loss when `labels` are given) for a prompt with its visual tokens [N, C]; training passes
        the pictures instead: `pixel_values` [F, 3, S, S] with each one's grid side."""
        if pixel_values is not None:
            if visual_tokens is not None:
                raise ValueError("give visual_tokens or pixel_values, not both")
            visual_tokens = self.tokens_from_pixels(pixel_values, grid_sizes)
        embeds = self.embed_prompt(input_ids, visual_tokens)
        if labels is not None:  # a training step keeps no cache (the config's `use_cache` is for generation)
            kwargs.setdefault("use_cache", False)
        return self.language_model(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, **kwargs)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, visual_tokens: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, *, stop_token_ids: list[int], max_new_tokens: int = 256,
                 prefix_cache: PrefixCache | None = None, **generate_kwargs) -> torch.Tensor:
        """New token ids [B, T] for a prompt; generation ends at any of `stop_token_ids` (kept in the output).
        `prefix_cache` (one prompt, B = 1): the previous prompt's KV cache, reused up to where the two differ."""
        embeds = self.embed_prompt(input_ids, visual_tokens)
        if attention_mask is None:
            attention_mask = torch.ones(input_ids.shape, dtype=torch.long, device=embeds.device)
        generate_kwargs.setdefault("do_sample", False)
        if prefix_cache is not None:
            generate_kwargs[prefix_cache.argument(self.language_model)] = prefix_cache.reuse(
                embeds, self.language_model, room=max_new_tokens)
        pad = self.language_model.config.pad_token_id
        return self.language_model.generate(inputs_embeds=embeds, attention_mask=attention_mask.to(embeds.device),
                                            eos_token_id=list(stop_token_ids), max_new_tokens=max_new_tokens,
                                            pad_token_id=stop_token_ids[0] if pad is None else pad, **generate_kwargs)


    def score(self, input_ids: torch.Tensor, visual_tokens: torch.Tensor | None, continuations: list[list[int]],
              prefix_cache: PrefixCache | None = None) -> list[float]:
        """The log-likelihood of each continuation (token ids) after a prompt [1, L]: the sum over its tokens of
        log p(token | prompt, the tokens before it). The prompt is computed once (after what `prefix_cache`
        shares with it); each continuation then costs its own tokens."""
        cache = prefix_cache if prefix_cache is not None and not prefix_cache.static else PrefixCache()
        embeds = self.embed_prompt(input_ids, visual_tokens)  # [1, L, D]
        lm, length, scores = self.language_model, embeds.shape[1], []
        embed_tokens = self.get_input_embeddings()
        for ids in continuations:
            if not ids:
                raise ValueError("an empty continuation has no likelihood to compare")
            past = cache.reuse(embeds)  # at most L - 1 positions: the logits at L - 1 are recomputed
            tokens = torch.tensor([ids], device=embeds.device)  # [1, T]
            full = torch.cat([embeds, embed_tokens(tokens).to(embeds.dtype)], dim=1)  # [1, L + T, D]
            out = lm(inputs_embeds=full[:, cache.reused:], use_cache=True, **{cache.argument(lm): past})
            logits = out.logits[0, length - 1 - cache.reused:-1].float()  # [T, V]: each predicts the next token
            scores.append(float(torch.log_softmax(logits, dim=-1).gather(1, tokens[0, :, None]).sum()))
        return scores


class PrefixCache:
    """The KV cache of the last prompt answered, reused by the next prompt up to where they first differ (a
    session's prompts share the system message, history and the memory frames before the first that changed).
    It holds one prompt and its reply at most, cropped to the shared part before each use.

    `static`: a transformers `StaticCache` (preallocated, written in place; on a GPU `generate` then compiles
    its decoding step), its length the prompt plus the reply's room rounded up to `STATIC_BLOCK` positions,
    grown only when a prompt needs more, so that compiled steps are reused across questions."""

    STATIC_BLOCK = 256

    def __init__(self, static: bool = False):
        self.static = static
        self.embeds: torch.Tensor | None = None  # [1, L, D] of the last prompt
        self.cache = None
        self.reused = 0  # positions taken from the cache by the last reuse
        self.capacity = 0  # positions a static cache holds
        self._argument: str | None = None

    def argument(self, language_model) -> str:
        """The cache argument's name in this transformers release (`cache` from 5.2x, `past_key_values` before),
        read once."""
        if self._argument is None:
            import inspect

            params = inspect.signature(language_model.forward).parameters
            self._argument = "cache" if "cache" in params else "past_key_values"
        return self._argument

    def reuse(self, embeds: torch.Tensor, language_model=None, room: int = 0):
        """The cache cropped to the prefix `embeds` [1, L, D] shares with the last prompt (at least one
        position is left to compute, for the first token's logits). A static cache needs `language_model`
        (for its shape) and `room`, the new tokens the reply may add."""
        from transformers import DynamicCache, StaticCache

        if embeds.shape[0] != 1:
            raise ValueError(f"a prefix cache serves one prompt at a time, got a batch of {embeds.shape[0]}")
        shared = 0
        if self.cache is not None and self.embeds is not None and self.embeds.shape[-1] == embeds.shape[-1]:
            m = min(self.embeds.shape[1], embeds.shape[1] - 1)
            differs = (self.embeds[0, :m] != embeds[0, :m]).any(dim=-1)  # [m]
            shared = int(torch.argmax(differs.int())) if bool(differs.any()) else m
        if self.static:
            if language_model is None:
                raise ValueError("a static prefix cache needs the language model to shape its cache")
            needed = embeds.shape[1] + room
            if self.cache is None or self.capacity < needed:
                self.capacity = -(-needed // self.STATIC_BLOCK) * self.STATIC_BLOCK
                self.cache, shared = StaticCache(config=language_model.config, max_cache_len=self.capacity), 0
        elif shared == 0 or self.cache is None:
            self.cache = DynamicCache()
        held = int(self.cache.get_seq_length())  # a device tensor for a static cache: read once
        if held > shared:
            self.cache.crop(shared - held)  # a negative count: positions to drop (every 5.x; a static cache in place)
        self.embeds, self.reused = embeds, shared
        return self.cache

    def clear(self) -> None:
        self.embeds, self.cache, self.reused, self.capacity = None, None, 0, 0
