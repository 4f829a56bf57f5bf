"""Training a Qwen-VL backbone with the same recipe (stage 2 online SFT, full or LoRA, DeepSpeed): samples laid out
by the stream's own `QwenLayout` (temporal patches, each pooled to the grid the memory would show it at, the chat
template, 3-D positions) and the loss computed through transformers' own model. The saved checkpoint is in the
transformers layout with its processor files, recording the frame size, memory and rate in `streaming`."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn

from ..backbones.qwen_layout import QwenLayout
from ..backbones.qwen_vl import encode_patches
from ..data.image import load_image
from ..settings import SettingsError
from .dataset import SampleBuilder
from .lora import LORA_ALPHA_PER_RANK, lora_targets
from .tokenize import IGNORE, label_text

PROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")


class QwenSampleBuilder(SampleBuilder):
    """One Conversation -> tensors for a Qwen-VL model: input ids, labels, position ids [3, L], and the patches'
    pixels [P, T, 3, S, S] with the grid side each is shown at."""

    def __init__(self, tokenizer, layout: QwenLayout, data):
        self.tokenizer, self.layout, self.config, self.data = tokenizer, layout, layout, data
        self.memory = data.memory.policy.per_entry(data.memory, layout.frames_per_patch)  # entries are patches
        self.grids(1)  # a policy training cannot arrange patches for is refused now, in one line
        self.system = data.system_message

    def visual_estimate(self, entry: dict) -> int:
        g = self.layout.grid_size
        if entry.get("image"):
            return g * g
        if entry.get("video") or entry.get("all_image_files"):
            n = len(entry.get("all_image_files") or []) or self.data.max_frames
            return sum(s * s for s in self.grids(-(-n // self.layout.frames_per_patch)))
        return 0

    def _patches(self, conv, spec, rng) -> list[tuple[list, float | None, float]]:
        """The clip's frames in temporal patches, the last frame repeated to fill one (as the processor does):
        (frames, the patch's time, its first frame's time)."""
        frames = self._frames(conv, spec, conv.turns[-1].time if conv.online else None, rng)
        t = self.layout.frames_per_patch
        frames += [frames[-1]] * (-len(frames) % t)
        return [([im for im, _ in frames[k:k + t]], self.layout.patch_time(frames[k][1], frames[k + t - 1][1]),
                 frames[k][1]) for k in range(0, len(frames), t)]

    def build(self, conv, spec, rng) -> dict:
        layout, g = self.layout, self.layout.grid_size
        turns = [[t.user, t.assistant] for t in conv.turns]
        shown: list[list[tuple[list, int, float | None]]] = [[] for _ in turns]  # per turn: (frames, side, time)
        if conv.images:
            images = [load_image(p) for p in conv.images]
            turns[0][0] = layout.images_text([g * g] * len(images)) + turns[0][0].replace("<image>", "").strip()
            shown[0] = [([im] * layout.frames_per_patch, g, None) for im in images]
        elif conv.video or conv.frame_files:
            patches = self._patches(conv, spec, rng)
            sizes = self.grids(len(patches))
            k = 0
            for (frames, time, first), side in zip(patches, sizes):  # online: each turn the patches since the last
                while conv.online and k < len(turns) - 1 and first > conv.turns[k].time:
                    k += 1
                shown[k].append((frames, side, time))
            for k, turn in enumerate(turns):
                if shown[k]:
                    turn[0] = layout.vision_text([(t, s * s) for _, s, t in shown[k]]) + turn[0].replace(
                        "<video>", "").strip()
        text, spans, ends = self.render(turns)
        sample = label_text(self.tokenizer, text, spans, ends, self.data.max_seq_length, add_special_tokens=False)
        kept = [p for per_turn in shown[: sample.turns_kept] for p in per_turn]
        ids = torch.tensor(sample.input_ids)
        per_run = [len(per_turn) for per_turn in shown[: sample.turns_kept] if per_turn]
        temporal = [i for per_turn in shown[: sample.turns_kept] if per_turn
                    for i in layout.temporal_ids([t for _, _, t in per_turn])]
        out = {"input_ids": ids, "labels": torch.tensor(sample.labels),
               "position_ids": layout.positions(ids, [(s, s) for _, s, _ in kept], temporal, per_run)}
        if kept:
            out["pixel_values"] = layout.pixel_values([im for frames, _, _ in kept for im in frames])
            out["grid_sizes"] = torch.tensor([s for _, s, _ in kept])
        return out

    def render(self, turns: list[list[str]]) -> tuple[str, list[tuple[int, int]], list[int]]:
        """The conversation through the model's own chat template, with each reply's character span (the stop
        token included) and each turn's end."""
        messages = [{"role": "system", "content": self.system}] if self.system else []
        for user, assistant in turns:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False)
        spans, ends, at = [], [], 0
        for _, assistant in turns:
            opening, stop = "<|im_start|>assistant\n", "<|im_end|>"
            at = text.index(opening + assistant + stop, at) + len(opening)
            spans.append((at, at + len(assistant) + len(stop)))
            at += len(assistant) + len(stop)
            ends.append(at + 1)  # the newline after the stop token
        return text, spans, ends


def collate_qwen(batch: list[dict], pad_token_id: int) -> dict:
    """`dataset.collate`, with the position ids [B, 3, L] padded too."""
    from .dataset import collate

    out = collate(batch, pad_token_id)
    length = out["input_ids"].shape[1]
    positions = torch.zeros((len(batch), 3, length), dtype=torch.long)
    for row, b in enumerate(batch):
        positions[row, :, : b["position_ids"].shape[1]] = b["position_ids"]
    out["position_ids"] = positions
    return out


def qwen_loss(model, layout: QwenLayout, input_ids, labels, attention_mask, position_ids, pixel_values=None,
              grid_sizes=None) -> torch.Tensor:
    """Mean next-token loss over the labelled tokens: patches through the vision tower (without autograd when all
    of it is frozen), each pooled to its grid side, their merged tokens at the visual slots and their DeepStack
    features (Qwen3-VL) into the first decoder layers."""
    embeds = model.get_input_embeddings()(input_ids)  # [B, L, D]
    mask = torch.isin(input_ids, torch.tensor(layout.pad_ids, device=input_ids.device))  # [B, L]
    extra = {}
    if pixel_values is not None:
        visual = model.model.visual
        with torch.set_grad_enabled(torch.is_grad_enabled() and any(p.requires_grad for p in visual.parameters())):
            grids = encode_patches(model, layout, pixel_values)  # [P, C, g, g]
        tokens = torch.cat([nn.functional.adaptive_avg_pool2d(grid, int(s)).flatten(1).T
                            for grid, s in zip(grids, grid_sizes)])  # [N, C]: each patch at its side, row-major
        parts = tokens.split(embeds.shape[-1], dim=-1)
        embeds = embeds.masked_scatter(mask[..., None], parts[0].to(embeds.dtype))
        if len(parts) > 1:
            extra = dict(visual_pos_masks=mask, deepstack_visual_embeds=[p.to(embeds.dtype) for p in parts[1:]])
    out = model.model.language_model(inputs_embeds=embeds, attention_mask=attention_mask,
                                     position_ids=position_ids.transpose(0, 1), use_cache=False, **extra)
    logits = model.lm_head(out.last_hidden_state)[:, :-1].float()  # [B, L-1, V]
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                       ignore_index=IGNORE)


def prepare_qwen(model, args):
    """The freeze switches (vision: the tower's blocks; projector: its mergers, DeepStack's too), then LoRA on the
    language model (its adapters train whatever the switches say)."""
    if args.use_vision_lora:
        raise SettingsError("--use_vision_lora: LoRA on a Qwen-VL vision tower is not supported; freeze it or "
                            "train it whole")
    visual, lm = model.model.visual, model.model.language_model
    visual.requires_grad_(not args.freeze_vision)
    for merger in [visual.merger, *getattr(visual, "deepstack_merger_list", [])]:
        merger.requires_grad_(not args.freeze_projector)
    lm.requires_grad_(not args.freeze_llm)
    model.lm_head.requires_grad_(not args.freeze_llm)
    if args.use_llm_lora:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=args.use_llm_lora, lora_alpha=LORA_ALPHA_PER_RANK * args.use_llm_lora,
                            lora_dropout=0.05, target_modules=lora_targets(lm))
        model.model.language_model = get_peft_model(lm, config)
    return model


def copy_processor_files(source: Path, out: Path) -> None:
    """The start checkpoint's processor settings beside the trained weights (a stream reads its mean and std)."""
    for name in PROCESSOR_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, out / name)


class QwenForStreamTraining(nn.Module):
    """The Trainer's model: transformers' Qwen-VL model, its forward the loss above (so that DeepSpeed and DDP wrap
    one module whose forward they see). Its state dict is the inner model's under `qwen.`."""

    def __init__(self, model, layout: QwenLayout):
        super().__init__()
        self.qwen, self.layout, self.config = model, layout, model.config

    def forward(self, input_ids, labels, attention_mask, position_ids, pixel_values=None, grid_sizes=None):
        return {"loss": qwen_loss(self.qwen, self.layout, input_ids, labels, attention_mask, position_ids,
                                  pixel_values, grid_sizes)}

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None):
        self.qwen.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)


def load_for_training(engine_class, root: Path, dtype: str, attn_implementation: str | None):
    """The engine of the start checkpoint, on the CPU (the Trainer places it): its model, tokenizer, layout and
    recorded stream settings."""
    return engine_class.from_pretrained(str(root), device="cpu", dtype=dtype, attn_implementation=attn_implementation)
