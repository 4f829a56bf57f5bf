"""Conversation templates and the prompt builder (docs/design.md, "Prompt format"): phi3-chat renders
`<|system|>\n{system}<|end|><|user|>\n{user}<|end|><|assistant|>\n`, and a frame in memory is
`Frame{index+1} at {t:.1f}s: <img><IMG_CONTEXT>...</img>`, one `<IMG_CONTEXT>` per visual token.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InputError

IMG_START = "<img>"
IMG_END = "</img>"
IMG_CONTEXT = "<IMG_CONTEXT>"
IMAGE_PLACEHOLDER = "<image>"


@dataclass(frozen=True)
class Template:
    """How one model family writes a conversation."""

    name: str
    system_template: str  # with a `{system}` slot
    user_role: str
    assistant_role: str
    sep: str  # written after every message, the system message included

    @property
    def stop_token(self) -> str:
        """The token that ends an assistant reply."""
        return self.sep.strip()

    def render(self, system: str, history: Sequence[tuple[str, str]], user: str) -> str:
        """The prompt for a new user message after `history` [(user, assistant), ...]."""
        parts = [self.system_template.format(system=system), self.sep]
        for past_user, past_assistant in history:
            parts += [self.user_role, past_user, self.sep, self.assistant_role, past_assistant, self.sep]
        parts += [self.user_role, user, self.sep, self.assistant_role]
        return "".join(parts)


_CHATML = dict(system_template="<|im_start|>system\n{system}", user_role="<|im_start|>user\n",
               assistant_role="<|im_start|>assistant\n", sep="<|im_end|>\n")

TEMPLATES: dict[str, Template] = {
    # Phi-3 based models (InternVL2-4B, VideoChat-Online-4B).
    "phi3-chat": Template(name="phi3-chat", system_template="<|system|>\n{system}", user_role="<|user|>\n",
                          assistant_role="<|assistant|>\n", sep="<|end|>"),
    # ChatML, as written by Qwen2-based InternVL models (names used in their config.json).
    "internvl2_5": Template(name="internvl2_5", **_CHATML),
    "Hermes-2": Template(name="Hermes-2", **_CHATML),
}


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown conversation template {name!r}; known: {', '.join(TEMPLATES)}") from None


@dataclass(frozen=True)
class FrameSlot:
    """A video frame as the prompt sees it: its place in the stream and how many tokens it holds."""

    index: int  # 0-based frame index from the start of the stream
    timestamp: float | None  # seconds; None writes the line without a time (offline training video)
    num_tokens: int


def image_tokens(num_tokens: int) -> str:
    """`<img>` + one `<IMG_CONTEXT>` per visual token + `</img>`."""
    return IMG_START + IMG_CONTEXT * num_tokens + IMG_END


def frames_text(frames: Sequence[FrameSlot]) -> str:
    """One `Frame{n} at {t}s: <img>...</img>` line per frame (`Frame{n}: ...` without a time), joined by newlines."""
    return "\n".join(f"Frame{f.index + 1}{'' if f.timestamp is None else f' at {f.timestamp:.1f}s'}: "
                     f"{image_tokens(f.num_tokens)}" for f in frames)


def video_message(frames: Sequence[FrameSlot], question: str) -> str:
    """The user message for a question about the frames held in memory."""
    return f"{frames_text(frames)}\n{question}" if frames else question


def images_message(tokens_per_image: Sequence[int], question: str) -> str:
    """The user message for still images (InternVL style): `<image>` slots, or a prefix per image."""
    if IMAGE_PLACEHOLDER in question:
        if question.count(IMAGE_PLACEHOLDER) != len(tokens_per_image):
            raise InputError(f"the question has {question.count(IMAGE_PLACEHOLDER)} {IMAGE_PLACEHOLDER} "
                             f"placeholders but {len(tokens_per_image)} images were given")
        message = question
    elif len(tokens_per_image) == 1:
        message = f"{IMAGE_PLACEHOLDER}\n{question}"
    else:
        prefix = "".join(f"Image-{i + 1}: {IMAGE_PLACEHOLDER}\n" for i in range(len(tokens_per_image)))
        message = prefix + question
    for n in tokens_per_image:
        message = message.replace(IMAGE_PLACEHOLDER, image_tokens(n), 1)
    return message


def build_prompt(
    template: Template,
    system: str,
    history: Sequence[tuple[str, str]],
    frames: Sequence[FrameSlot],
    question: str,
) -> str:
    """The whole prompt for a question about the given frames, after an earlier text-only history."""
    return template.render(system, history, video_message(frames, question))


PAD_TOKENS = (IMG_CONTEXT, "<|video_pad|>", "<|image_pad|>")  # a visual slot: this family's, Qwen-VL's
_PAD_RUN = re.compile("|".join(f"(?:{re.escape(t)})+" for t in PAD_TOKENS))
_COMPACT_RUN = re.compile("(" + "|".join(re.escape(t) for t in PAD_TOKENS) + r")\*(\d+)")


def compact_prompt(prompt: str) -> str:
    """The prompt with each run of n visual slots written `<IMG_CONTEXT>*n` (for logs; `expand_prompt` undoes it)."""
    def compact(m: re.Match) -> str:
        token = next(t for t in PAD_TOKENS if m.group(0).startswith(t))
        return f"{token}*{len(m.group(0)) // len(token)}"

    return _PAD_RUN.sub(compact, prompt)


def expand_prompt(compact: str) -> str:
    """The exact prompt back from `compact_prompt`'s form."""
    return _COMPACT_RUN.sub(lambda m: m.group(1) * int(m.group(2)), compact)
