"""Qwen3-VL and Qwen2.5-VL as streaming backbones, run through transformers' own model classes
(docs/backbones.md).

What a stream does with them, as the installed transformers computes it:
- frames go through the vision tower in temporal patches of `temporal_patch_size` (2) frames, each patch a grid
  of merged tokens (`spatial_merge_size` 2 merges 2x2 patches), at one fixed frame size for the whole stream;
- Qwen3-VL writes each patch as `<{t:.1f} seconds><|vision_start|><|video_pad|>...<|vision_end|>` (t the mean
  of its first and last frames' times) and adds the DeepStack features of `deepstack_visual_indexes` to the
  first decoder layers at the visual positions; memory holds them as extra channels of the patch's grid, so a
  policy that pools a patch pools them together;
- Qwen2.5-VL writes the patches as one video, `<|vision_start|><|video_pad|>...<|vision_end|>`, its temporal
  position ids the patch's time since the first held patch times `tokens_per_second`;
- positions are 3-D M-RoPE (temporal, row, column) computed for what memory holds, and they are part of what the
  prefix cache compares, so a question never reuses a KV prefix computed at other positions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ..chat import Reply, default_device
from ..errors import CheckpointError, InputError
from ..model.checkpoint import check_finite, load_tokenizer, one_line, resolve_dtype
from ..model.modeling import PrefixCache
from ..settings import SettingsError, check_attention, check_device
from . import register
from .qwen_layout import STOP_TOKENS, QwenLayout, patchify


@dataclass
class QwenStreamConfig:
    """What the streaming core reads of a Qwen-VL checkpoint (its config.json's `streaming` object, where it has
    one): the frame size a stream fixes for all its frames, and the memory and frame rate it was trained with."""

    frame_size: int  # frames are resized to frame_size x frame_size pixels
    grid_size: int  # merged tokens a side of one temporal patch: frame_size / (patch_size * spatial_merge_size)
    fps: float | None = None
    memory: dict | None = None


@dataclass
class Visual:
    """What fills a prompt's visual slots: merged tokens [N, D], DeepStack features [k][N, D] (Qwen3-VL), and
    each token's 3-D position ids [3, L] for the whole prompt."""

    tokens: torch.Tensor | None
    deepstack: list[torch.Tensor]
    positions: torch.Tensor


class QwenVLEngine:
    """The engine for one Qwen-VL family; `Qwen3VLEngine` and `Qwen25VLEngine` say what differs."""

    name = ""
    model_types: tuple[str, ...] = ()
    model_class = ""  # transformers' class for the family

    def __init__(self, model, tokenizer, root: Path | None = None, frame_size: int | None = None,
                 system_message: str | None = None, kv_cache: str = "dynamic"):
        if kv_cache != "dynamic":
            raise SettingsError(f"--kv-cache {kv_cache}: {self.name} streams with the dynamic cache only")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.layout = QwenLayout.of(self.name, model.config, tokenizer, root, frame_size)
        self.frames_per_patch = self.layout.frames_per_patch
        self.patch_time = self.layout.patch_time
        streaming = getattr(model.config, "streaming", None) or {}
        self.config = QwenStreamConfig(self.layout.frame_size, self.layout.grid_size, streaming.get("fps"),
                                      streaming.get("memory"))
        self.system_message = system_message
        self.kv_cache = kv_cache
        self.pad_ids = self.layout.pad_ids
        self.cache_argument = PrefixCache().argument(model.model.language_model)
        vocab = tokenizer.get_vocab()
        self.stop_token_ids = [vocab[t] for t in STOP_TOKENS if t in vocab]

    @classmethod
    def from_pretrained(cls, path: str, *, device: str | None = None, dtype: str | None = None,
                        attn_implementation: str | None = None, system_message: str | None = None,
                        frame_size: int | None = None, kv_cache: str = "dynamic", compile_vision: str | None = None,
                        fixed_batch: int | None = None, preprocess: str = "auto") -> QwenVLEngine:
        """Model and tokenizer from a local folder in the transformers layout (`load_engine` resolves hub ids).
        `fixed_batch` and `preprocess` are the InternVL family's vision-tower options, which the evaluation passes
        to every backbone: here frames are resized on the CPU and each call's patches encoded as given."""
        if compile_vision is not None:
            raise SettingsError(f"--compile-vision: not supported with {cls.name}")
        device = check_device(device) or default_device()
        check_attention(attn_implementation)
        root = Path(path)
        tokenizer = load_tokenizer(root)
        dtype = dtype or ("bf16" if torch.device(device).type == "cuda" else "fp32")
        import transformers
        from transformers.integrations import is_deepspeed_zero3_enabled

        placement = {} if is_deepspeed_zero3_enabled() else {"device_map": {"": str(device)}}  # ZeRO-3 places it
        try:
            model = getattr(transformers, cls.model_class).from_pretrained(
                str(root), dtype=resolve_dtype(dtype), attn_implementation=attn_implementation or "sdpa", **placement)
        except (OSError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{root}: {cls.name} weights do not load ({one_line(err)})") from None
        check_finite(model, root)
        return cls(model, tokenizer, root, frame_size, system_message, kv_cache)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def grid_size(self) -> int:
        return self.config.grid_size

    def new_memory(self, settings):
        """A fresh memory of these settings whose entries are temporal patches."""
        return settings.build(self.config.grid_size, frames_per_entry=self.frames_per_patch)

    # Vision: frames -> temporal patches of merged tokens
    def encode_frames(self, frames: Sequence) -> torch.Tensor:
        """Frames, a whole number of temporal patches -> one grid per patch [P, D * (1 + k), g, g]: the merged
        tokens, then the k DeepStack features, as channels."""
        with torch.inference_mode():
            return encode_patches(self.model, self.layout, self.layout.pixel_values(frames).to(self.device))

    def encode_images(self, images: Sequence[Image.Image]) -> tuple[torch.Tensor, list[int]]:
        """Still images, each one patch of itself repeated (as the image processor does) -> tokens [N, C] and the
        count per image."""
        grids = self.encode_frames([im for im in images for _ in range(self.frames_per_patch)])  # [I, C, g, g]
        i, c, g, _ = grids.shape
        return grids.reshape(i, c, g * g).transpose(1, 2).reshape(i * g * g, c), [g * g] * i

    # Prompt: what memory holds -> text, visual tokens and their positions
    def images_message(self, tokens_per_image: Sequence[int], question: str) -> str:
        return self.layout.images_text(tokens_per_image) + question

    def render(self, system: str | None, history: Sequence[tuple[str, str]], user: str) -> str:
        """The model's own chat template over the conversation (its default system message when `system` is None)."""
        messages = ([{"role": "system", "content": system}] if system else []) + [
            m for q, a in history for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]
        messages.append({"role": "user", "content": user})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def video_prompt(self, system: str | None, history: Sequence[tuple[str, str]], held: Sequence, question: str,
                     ) -> tuple[str, Visual | None]:
        """The prompt for a question about the patches memory holds (`memory.MemoryFrame`s), and what fills it."""
        patches = [(f.timestamp, f.num_tokens) for f in held]
        prompt = self.render(system, history, self.layout.vision_text(patches) + question if held else question)
        if not held:
            return prompt, None
        d = self.model.config.text_config.hidden_size
        tokens = torch.cat([f.tokens for f in held])  # [N, D * (1 + k)]
        parts = list(tokens.split(d, dim=-1))
        grids = [(f.grid.shape[1], f.grid.shape[2]) for f in held]
        positions = self.layout.positions(self.tokenize(prompt)[0], grids, self.layout.temporal_ids([t for t, _ in patches]))
        return prompt, Visual(parts[0], parts[1:], positions.to(self.device))

    def ask(self, user_message: str, visual_tokens: torch.Tensor | None = None,
            history: Sequence[tuple[str, str]] = (), **generate_kwargs) -> Reply:
        """Answer a user message whose image slots `visual_tokens` [N, C] fill (`encode_images`), after a history."""
        prompt = self.render(self.system_message, history, user_message)
        visual = None
        if visual_tokens is not None:
            d = self.model.config.text_config.hidden_size
            parts = list(visual_tokens.split(d, dim=-1))
            g = self.config.grid_size
            images = visual_tokens.shape[0] // (g * g)
            positions = self.layout.positions(self.tokenize(prompt)[0], [(g, g)] * images, [0] * images)
            visual = Visual(parts[0], parts[1:], positions.to(self.device))
        return self.generate(prompt, visual, **generate_kwargs)

    def ask_images(self, images: Sequence[Image.Image], question: str, history: Sequence[tuple[str, str]] = (),
                   **generate_kwargs) -> Reply:
        """Answer a question about still images (none for a text-only question)."""
        if not images:
            return self.ask(question, None, history, **generate_kwargs)
        tokens, per_image = self.encode_images(images)
        return self.ask(self.images_message(per_image, question), tokens, history, **generate_kwargs)

    # Language: prefill with the prefix cache, then decode or score
    def tokenize(self, prompt: str) -> torch.Tensor:
        return self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(self.device)

    @property
    def context_length(self) -> int | None:
        return getattr(self.model.config.text_config, "max_position_embeddings", None)

    def check_fits(self, prompt_tokens: int, reply_tokens: int) -> None:
        most = self.context_length
        if most is not None and prompt_tokens + reply_tokens > most:
            raise InputError(f"the question does not fit the model's context: its prompt is {prompt_tokens} tokens "
                             f"and the reply may take {reply_tokens}, over the {most} positions the model has; ask a "
                             "shorter question (or fewer --max-new-tokens)")

    @torch.inference_mode()
    def _inputs(self, prompt: str, visual: Visual | None):
        """Token ids [1, L], input embeddings [1, L, D], the visual mask [1, L], DeepStack features and positions
        [3, 1, L]; and the key the prefix cache compares: embeddings, DeepStack and positions at every token."""
        ids = self.tokenize(prompt)
        embed = self.model.get_input_embeddings()
        embeds = embed(ids)  # [1, L, D]
        mask = torch.isin(ids, torch.tensor(self.pad_ids, device=ids.device))  # [1, L]
        n_slots, n_visual = int(mask.sum()), 0 if visual is None or visual.tokens is None else len(visual.tokens)
        if n_slots != n_visual:
            raise ValueError(f"the prompt has {n_slots} visual slots but {n_visual} visual tokens were given")
        if visual is None:
            positions = torch.arange(ids.shape[1], device=ids.device).expand(3, -1)
            deepstack = []
        else:
            embeds = embeds.masked_scatter(mask[..., None], visual.tokens.to(embeds.dtype))
            positions, deepstack = visual.positions, [d.to(embeds.dtype) for d in visual.deepstack]
        extra = [torch.zeros_like(embeds).masked_scatter(mask[..., None], d) for d in deepstack]
        key = torch.cat([embeds, *extra, positions.T[None].to(embeds.dtype)], dim=-1)  # [1, L, D(1+k) + 3]
        return ids, embeds, mask, deepstack, positions[:, None], key

    def _run(self, embeds, mask, deepstack, positions, cache, start: int):
        """Logits [1, L - start, V] for positions `start` onward, after the `cache` holding those before."""
        kwargs = {}
        if deepstack:
            before = int(mask[0, :start].sum())
            kwargs = dict(visual_pos_masks=mask[:, start:], deepstack_visual_embeds=[d[before:] for d in deepstack])
        lm = self.model.model.language_model
        out = lm(inputs_embeds=embeds[:, start:], position_ids=positions[..., start:], use_cache=True,
                 **{self.cache_argument: cache}, **kwargs)
        return self.model.lm_head(out.last_hidden_state)

    def next_token_logits(self, prompt: str, visual: Visual | None, prefix_cache: PrefixCache | None = None,
                          ) -> torch.Tensor:
        """The logits [V] of the token after a prompt (after what `prefix_cache` shares with it)."""
        from transformers import DynamicCache

        _, embeds, mask, deepstack, positions, key = self._inputs(prompt, visual)
        with torch.inference_mode():
            cache = prefix_cache.reuse(key) if prefix_cache is not None else DynamicCache()
            start = prefix_cache.reused if prefix_cache is not None else 0
            return self._run(embeds, mask, deepstack, positions, cache, start)[0, -1]

    def generate_ids(self, prompt: str, visual: Visual | None, max_new_tokens: int = 256,
                     prefix_cache: PrefixCache | None = None, do_sample: bool = False, temperature: float = 1.0,
                     top_p: float = 1.0, num_beams: int = 1) -> Iterator[int]:
        """The reply's token ids as they are decoded (the stop token not included): greedy, or sampled."""
        from transformers import DynamicCache

        if num_beams != 1:
            raise SettingsError(f"num_beams {num_beams}: {self.name} streams decode one beam")
        ids, embeds, mask, deepstack, positions, key = self._inputs(prompt, visual)
        self.check_fits(ids.shape[1], max_new_tokens)
        with torch.inference_mode():  # entered per step: the caller's code between tokens runs in its own mode
            cache = prefix_cache.reuse(key) if prefix_cache is not None else DynamicCache()
            start = prefix_cache.reused if prefix_cache is not None else 0
            logits = self._run(embeds, mask, deepstack, positions, cache, start)[0, -1]
        position, embed = int(positions.max()) + 1, self.model.get_input_embeddings()
        for made in range(1, max_new_tokens + 1):
            token = _pick(logits, do_sample, temperature, top_p)
            if token in self.stop_token_ids:
                return
            yield token
            if made == max_new_tokens:
                return
            with torch.inference_mode():
                step = torch.full((3, 1, 1), position, device=self.device)
                logits = self._run(embed(torch.tensor([[token]], device=self.device)), mask[:, :0], [], step,
                                   cache, 0)[0, -1]
            position += 1

    def generate(self, prompt: str, visual: Visual | None, max_new_tokens: int = 256, streamer=None,
                 **generate_kwargs) -> Reply:
        ids = []
        for token in self.generate_ids(prompt, visual, max_new_tokens, **generate_kwargs):
            ids.append(token)
            if streamer is not None:
                streamer.put(torch.tensor([token]))
        if streamer is not None:
            streamer.end()
        return Reply(self.tokenizer.decode(ids, skip_special_tokens=True).strip(), ids, prompt)

    def generate_stream(self, prompt: str, visual: Visual | None, max_new_tokens: int = 256,
                        **generate_kwargs) -> Iterator[str]:
        """The reply as it is decoded: the text so far after each token."""
        ids = []
        for token in self.generate_ids(prompt, visual, max_new_tokens, **generate_kwargs):
            ids.append(token)
            yield self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def choose(self, prompt: str, visual: Visual | None, replies: Sequence[str], prefix_cache=None) -> Reply:
        """The most likely of the given replies (each scored to its stop token)."""
        if not replies:
            raise ValueError("choose needs at least one reply")
        ids, embeds, mask, deepstack, positions, key = self._inputs(prompt, visual)
        options = [self.tokenizer(r, add_special_tokens=False).input_ids + [self.stop_token_ids[0]] for r in replies]
        self.check_fits(ids.shape[1], max(map(len, options)))
        cache_of = prefix_cache if prefix_cache is not None else PrefixCache()  # the prompt computed once
        embed, length, scores = self.model.get_input_embeddings(), ids.shape[1], []
        next_position = int(positions.max()) + 1
        with torch.inference_mode():
            for option in options:
                cache = cache_of.reuse(key)  # at most L - 1 positions: the logits at L - 1 are recomputed
                start = cache_of.reused
                tokens = torch.tensor([option], device=self.device)  # [1, T]
                steps = (torch.arange(len(option), device=self.device) + next_position).expand(3, 1, -1)
                full = torch.cat([embeds, embed(tokens)], dim=1)  # [1, L + T, D]
                extended = torch.cat([mask, torch.zeros_like(tokens, dtype=torch.bool)], dim=1)
                logits = self._run(full, extended, deepstack, torch.cat([positions, steps], dim=-1), cache, start)
                logits = logits[0, length - 1 - start:-1].float()  # [T, V]: each predicts the next token
                scores.append(float(torch.log_softmax(logits, -1).gather(1, tokens[0, :, None]).sum()))
        best = max(range(len(replies)), key=scores.__getitem__)
        return Reply(replies[best], options[best][:-1], prompt)


def _pick(logits: torch.Tensor, do_sample: bool, temperature: float, top_p: float) -> int:
    """The next token: the most likely, or sampled at `temperature` from the smallest set holding `top_p`."""
    if not do_sample or temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    ordered, order = probs.sort(descending=True)
    keep = ordered.cumsum(0) - ordered < top_p  # the first token is always kept
    choice = torch.multinomial(ordered * keep, 1)
    return int(order[choice])


@register
class Qwen3VLEngine(QwenVLEngine):
    """Qwen3-VL (2B / 4B / 8B Instruct): a timestamp before each patch, DeepStack features in memory."""

    name = "qwen3-vl"
    model_types = ("qwen3_vl",)
    model_class = "Qwen3VLForConditionalGeneration"


@register
class Qwen25VLEngine(QwenVLEngine):
    """Qwen2.5-VL (3B / 7B Instruct): one video of the held patches, temporal ids scaled by seconds."""

    name = "qwen2.5-vl"
    model_types = ("qwen2_5_vl",)
    model_class = "Qwen2_5_VLForConditionalGeneration"


def encode_patches(model, layout: QwenLayout, videos: torch.Tensor) -> torch.Tensor:
    """Normalised frames [P, T, 3, S, S] -> one grid per patch [P, D * (1 + k), g, g] through the model's vision
    tower: the merged tokens, then the k DeepStack features (Qwen3-VL), as channels."""
    n, g, m = videos.shape[0], layout.grid_size, layout.merge_size
    rows = patchify(videos, layout.patch_size, m)  # [P * (g*m)^2, 3*T*p*p]
    grid_thw = torch.tensor([[1, g * m, g * m]] * n, device=videos.device)
    visual = model.model.visual
    out = visual(rows.to(visual.dtype), grid_thw=grid_thw)
    features = torch.cat([out.pooler_output, *(getattr(out, "deepstack_features", None) or [])], dim=-1)
    return features.view(n, g, g, -1).permute(0, 3, 1, 2).contiguous()  # [P, C, g, g]
