"""The answering engine: prompt text + visual tokens -> reply; it knows nothing of video streams or UIs.

    engine = ChatEngine.from_pretrained("path/or/hub-id", device="cuda", dtype="bf16")
    reply = engine.ask_images([load_image("cat.jpg")], "What is the cat doing?")

Visual tokens are pre-projector features [N, C] (what memory holds), their count checked against the prompt.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from transformers import PreTrainedTokenizerBase

from .backbones import register
from .conversation import FrameSlot, build_prompt, get_template, images_message
from .data.image import dynamic_tiles, frames_to_pixel_values, frames_to_pixel_values_on
from .errors import InputError
from .settings import SettingsError, check_device
from .model import VideoChatOnlineModel, load_pretrained


def default_device(index: int = 0) -> str:
    """GPU `index` when there is a GPU, else the CPU."""
    return f"cuda:{index}" if torch.cuda.is_available() else "cpu"


@dataclass
class Reply:
    text: str
    token_ids: list[int]  # generated ids, the stop token excluded
    prompt: str


@register
class ChatEngine:
    """The InternVL family's adapter (InternViT + pixel shuffle + `mlp1` + an LLM): one frame is one grid of
    pre-projector features, written `Frame{n} at {t}s: <img>...</img>` in the prompt."""

    name = "internvl"
    model_types = ("videochat_online", "internvl_chat")  # this project's layout, the original InternVL layout
    frames_per_patch = 1  # frames the vision tower encodes together as one memory entry

    @staticmethod
    def patch_time(first: float | None, last: float | None) -> float | None:
        """The time memory holds a patch at: a frame's own."""
        return first

    def __init__(self, model: VideoChatOnlineModel, tokenizer: PreTrainedTokenizerBase,
                 system_message: str | None = None, preprocess: str = "auto", fixed_batch: int | None = None,
                 compile_vision: str | None = None, kv_cache: str = "dynamic"):
        """`preprocess`: where frames are resized and normalised: "device" (uint8 to the model's device, resized
        there in batches), "pil" (on the CPU) or "auto" (device on a GPU). `fixed_batch`: every vision-tower call
        gets exactly this many frames (zeros pad the last batch), so a frame's features never depend on the
        batching (bit-identical memories in bf16 too). `compile_vision`: the tower under `torch.compile` in this
        mode (with `fixed_batch`, one graph serves every call). `kv_cache`: the cache a session's questions
        reuse (`model.modeling.PrefixCache`): "dynamic" or "static" (on a GPU, decoding steps compiled)."""
        if kv_cache not in ("dynamic", "static"):
            raise ValueError(f"kv_cache must be dynamic or static, got {kv_cache!r}")
        if preprocess not in ("auto", "device", "pil"):
            raise ValueError(f"preprocess must be auto, device or pil, got {preprocess!r}")
        if fixed_batch is not None and fixed_batch < 1:
            raise ValueError(f"fixed_batch must be >= 1, got {fixed_batch}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = model.config
        self.template = get_template(self.config.template)
        self.system_message = self.config.system_message if system_message is None else system_message
        self.stop_token_ids = [tokenizer.convert_tokens_to_ids(self.template.stop_token)]
        self.preprocess = ("device" if model.device.type == "cuda" else "pil") if preprocess == "auto" else preprocess
        self.fixed_batch = fixed_batch
        self.kv_cache = kv_cache
        self.encode_pixels = model.encode_frames  # pixel values [B, 3, S, S] -> grids [B, C, g, g]
        if compile_vision is not None:
            self.encode_pixels = torch.compile(model.encode_frames, mode=compile_vision, dynamic=False)

    @classmethod
    def from_pretrained(cls, path_or_id: str, *, device: str | None = None, dtype: str | None = None,
                        attn_implementation: str | None = None, system_message: str | None = None,
                        frame_size: int | None = None, **options) -> "ChatEngine":
        """Defaults: the first GPU when there is one, else the CPU; bf16 on a GPU, fp32 on the CPU.
        `options`: `preprocess`, `fixed_batch`, `compile_vision`, `kv_cache` (see __init__)."""
        if frame_size is not None:
            raise SettingsError(f"--frame-size {frame_size}: the InternVL family's frames are its tile size (the "
                                "checkpoint's config); the option is for backbones of dynamic resolution")
        device = check_device(device) or default_device()
        dtype = dtype or ("bf16" if torch.device(device).type == "cuda" else "fp32")
        model, tokenizer = load_pretrained(path_or_id, device=device, dtype=dtype,
                                           attn_implementation=attn_implementation)
        return cls(model, tokenizer, system_message, **options)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def new_memory(self, settings):
        """A fresh memory of these settings (`memory.MemorySettings`) for this model's frames."""
        return settings.build(self.config.grid_size)

    def video_prompt(self, system: str, history: Sequence[tuple[str, str]], held: Sequence, question: str,
                     ) -> tuple[str, torch.Tensor | None]:
        """The prompt for a question about the frames memory holds (`memory.MemoryFrame`s), and the visual tokens
        [N, C] that fill it."""
        slots = [FrameSlot(f.index, f.timestamp if f.timestamp is not None else 0.0, f.num_tokens) for f in held]
        tokens = torch.cat([f.tokens for f in held]) if held else None
        return build_prompt(self.template, system, history, slots, question), tokens

    def render(self, system: str, history: Sequence[tuple[str, str]], message: str) -> str:
        """The prompt for a user message (its visual slots already written) after a text history."""
        return build_prompt(self.template, system, history, (), message)

    def images_message(self, tokens_per_image: Sequence[int], question: str) -> str:
        """The user message for still images (`encode_images` gives their token counts)."""
        return images_message(tokens_per_image, question)

    def pixel_values(self, frames: Sequence) -> torch.Tensor:
        """Frames (PIL images or HxWx3 uint8 arrays) -> pixel values [B, 3, S, S] on the model's device."""
        size = self.config.tile_size
        arrays = self.preprocess == "device" and all(isinstance(f, np.ndarray) for f in frames) \
            and len({f.shape for f in frames}) == 1
        if arrays:
            return frames_to_pixel_values_on(frames, size, self.device)
        return frames_to_pixel_values(frames, size).to(self.device)

    def encode_frames(self, frames: Sequence) -> torch.Tensor:
        """Frames (PIL images or HxWx3 uint8 arrays) -> feature grids [B, C, g, g] through the tower (in
        calls of exactly `fixed_batch` frames when set)."""
        pixels = self.pixel_values(frames)  # [B, 3, S, S]
        with torch.inference_mode():
            if self.fixed_batch is None:
                return self.encode_pixels(pixels)
            n, b = len(pixels), self.fixed_batch
            padded = torch.cat([pixels, pixels.new_zeros((-n % b, *pixels.shape[1:]))])  # [ceil(n/b)*b, 3, S, S]
            grids = [self.encode_pixels(chunk) for chunk in padded.split(b)]
            return torch.cat(grids)[:n]

    def encode_images(self, images: Sequence[Image.Image]) -> tuple[torch.Tensor, list[int]]:
        """Still images, dynamically tiled -> (visual tokens [N, C], tokens per image)."""
        c = self.config
        tiles = [dynamic_tiles(im, c.tile_size, c.min_dynamic_patch, c.max_dynamic_patch, c.use_thumbnail)
                 for im in images]
        pixels = frames_to_pixel_values([t for per_image in tiles for t in per_image], c.tile_size)
        with torch.inference_mode():
            tokens = self.model.encode_images(pixels.to(self.device))  # [sum(tiles) * g*g, C]
        return tokens, [len(t) * c.tokens_per_tile for t in tiles]

    @property
    def context_length(self) -> int | None:
        """The most positions the LLM has (its `max_position_embeddings`)."""
        return getattr(self.config.llm_config, "max_position_embeddings", None)

    def check_fits(self, prompt_tokens: int, reply_tokens: int) -> None:
        """An InputError in one line when a prompt and its longest reply would not fit the model's positions (past
        them a model answers junk)."""
        most = self.context_length
        if most is not None and prompt_tokens + reply_tokens > most:
            raise InputError(f"the question does not fit the model's context: its prompt is {prompt_tokens} tokens "
                             f"and the reply may take {reply_tokens}, over the {most} positions the model has; ask a "
                             "shorter question (or fewer --max-new-tokens)")

    def tokenize(self, prompt: str) -> torch.Tensor:
        """A prompt's input ids [1, T] on the model's device."""
        return self.tokenizer(prompt, return_tensors="pt").input_ids.to(self.device)

    def generate(self, prompt: str, visual_tokens: torch.Tensor | None, max_new_tokens: int = 256,
                 **generate_kwargs) -> Reply:
        """The reply to a finished prompt; generation ends at the template's stop token."""
        input_ids = self.tokenize(prompt)
        self.check_fits(input_ids.shape[1], max_new_tokens)
        with torch.inference_mode():
            out = self.model.generate(input_ids, visual_tokens, stop_token_ids=self.stop_token_ids,
                                      max_new_tokens=max_new_tokens, **generate_kwargs)
        ids = list(itertools.takewhile(lambda tok: tok not in self.stop_token_ids, out[0].tolist()))
        text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return Reply(text=text, token_ids=ids, prompt=prompt)

    def choose(self, prompt: str, visual_tokens: torch.Tensor | None, replies: Sequence[str],
               prefix_cache=None) -> Reply:
        """The most likely of the given replies to a finished prompt (each scored to its stop token), instead of a
        generated one: a multiple-choice answer whose letter and text cannot disagree."""
        if not replies:
            raise ValueError("choose needs at least one reply")
        input_ids = self.tokenize(prompt)
        stop = self.stop_token_ids[0]
        options = [self.tokenizer(r, add_special_tokens=False).input_ids for r in replies]
        self.check_fits(input_ids.shape[1], max(len(ids) + 1 for ids in options))
        with torch.inference_mode():
            scores = self.model.score(input_ids, visual_tokens, [ids + [stop] for ids in options], prefix_cache)
        best = max(range(len(replies)), key=scores.__getitem__)
        return Reply(text=replies[best], token_ids=options[best], prompt=prompt)

    def generate_stream(self, prompt: str, visual_tokens: torch.Tensor | None, max_new_tokens: int = 256,
                        **generate_kwargs) -> Iterator[str]:
        """The reply to a finished prompt as it is generated: the text so far, after each new token (the last value
        is `generate(...).text`). Generation runs in a worker thread one token per step of this iterator, so that
        a caller interleaving several replies on one model decides which one computes; closing it stops it."""
        turns = TokenTurns(self.stop_token_ids)
        failure: list[BaseException] = []

        def work():
            try:
                self.generate(prompt, visual_tokens, max_new_tokens=max_new_tokens, streamer=turns,
                              **generate_kwargs)
            except TokenTurns.Stopped:
                pass
            except BaseException as err:  # handed to the caller below
                failure.append(err)
            finally:
                turns.end()

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        ids: list[int] = []
        try:
            for token in turns:
                ids.append(token)
                yield self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        finally:
            turns.stop()
            worker.join()
        if failure:
            raise failure[0]

    def ask(self, user_message: str, visual_tokens: torch.Tensor | None = None,
            history: Sequence[tuple[str, str]] = (), **generate_kwargs) -> Reply:
        """Answer a user message whose `<IMG_CONTEXT>` slots `visual_tokens` fill, after a text history."""
        prompt = build_prompt(self.template, self.system_message, history, (), user_message)
        return self.generate(prompt, visual_tokens, **generate_kwargs)

    def ask_images(self, images: Sequence[Image.Image], question: str,
                   history: Sequence[tuple[str, str]] = (), **generate_kwargs) -> Reply:
        """Answer a question about still images (none for a text-only question)."""
        if not images:
            return self.ask(question, None, history, **generate_kwargs)
        tokens, per_image = self.encode_images(images)
        return self.ask(images_message(per_image, question), tokens, history, **generate_kwargs)


class TokenTurns:
    """A transformers streamer that hands each new token to its reader and then waits for the reader to ask for
    the next one: the generating thread computes one token per turn (`for token in turns`), stop tokens are not
    handed over, and `stop()` ends the generation at its next token (`Stopped` is raised there)."""

    class Stopped(Exception):
        pass

    _END = object()

    def __init__(self, stop_token_ids: Sequence[int]):
        self.stop_token_ids = set(stop_token_ids)
        self.tokens: queue.Queue = queue.Queue()
        self.turn = threading.Semaphore(0)
        self.stopped = False
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate's first call hands over the prompt's ids
            self.prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            if token in self.stop_token_ids:
                continue
            self.tokens.put(token)
            self.turn.acquire()  # until the reader wants the next token
            if self.stopped:
                raise TokenTurns.Stopped

    def end(self) -> None:
        self.tokens.put(self._END)

    def stop(self) -> None:
        self.stopped = True
        self.turn.release()

    def __iter__(self) -> Iterator[int]:
        while (token := self.tokens.get()) is not self._END:
            yield token
            self.turn.release()
