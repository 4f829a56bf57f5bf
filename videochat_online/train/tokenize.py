"""Tokenisation for SFT: loss on each assistant reply and the stop token after it, -100 elsewhere. The text is
tokenized once and a token is trainable when its characters lie inside a reply (offset mapping), so labels
are exact whatever the tokenizer merges. Truncation drops whole trailing turns, never visual tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from ..conversation import IMG_CONTEXT, Template
from ..errors import InputError

IGNORE = -100


class SampleTooLong(InputError, ValueError):
    """Even the first turn does not fit in the maximum sequence length."""


@dataclass
class TokenizedSample:
    input_ids: list[int]
    labels: list[int]
    turns_kept: int


def render(template: Template, system: str, turns: list[tuple[str, str]]) -> tuple[str, list[tuple[int, int]], list[int]]:
    """(text, trainable character spans, character end of each turn) for (user, assistant) turns."""
    stop = template.stop_token
    tail = template.sep[template.sep.index(stop) + len(stop):]  # what the separator adds after the stop token
    text = template.system_template.format(system=system) + template.sep
    spans, ends = [], []
    for user, assistant in turns:
        text += template.user_role + user + template.sep + template.assistant_role
        spans.append((len(text), len(text) + len(assistant) + len(stop)))
        text += assistant + stop + tail
        ends.append(len(text))
    return text, spans, ends


def tokenize_conversation(tokenizer: PreTrainedTokenizerBase, template: Template, system: str,
                          turns: list[tuple[str, str]], max_length: int) -> TokenizedSample:
    return label_text(tokenizer, *render(template, system, turns), max_length)


def label_text(tokenizer: PreTrainedTokenizerBase, text: str, spans: list[tuple[int, int]], ends: list[int],
               max_length: int, add_special_tokens: bool = True) -> TokenizedSample:
    """Token ids and labels of a rendered conversation: a token is trainable when its characters lie inside one of
    `spans` (each reply with its stop token); past `max_length`, whole trailing turns (ending at `ends`) go."""
    encoded = tokenizer(text, return_offsets_mapping=True, add_special_tokens=add_special_tokens)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    labels = [IGNORE] * len(ids)
    span = 0
    for i, (start, end) in enumerate(offsets):
        while span < len(spans) and start >= spans[span][1]:
            span += 1
        if span < len(spans) and end > start and start >= spans[span][0] and end <= spans[span][1]:
            labels[i] = ids[i]
    kept = len(spans)
    if len(ids) > max_length:
        # the token count of the first k turns: up to the first text token at or after the k-th turn's end
        fits = [next((i for i, (s, e) in enumerate(offsets) if s >= end and e > s), len(ids)) for end in ends]
        kept = max((k + 1 for k, n in enumerate(fits) if n <= max_length), default=0)
        if kept == 0:
            raise SampleTooLong(f"the first turn alone is {fits[0]} tokens, over max_seq_length {max_length}")
        ids, labels = ids[: fits[kept - 1]], labels[: fits[kept - 1]]
    return TokenizedSample(ids, labels, kept)


def count_image_tokens(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> int:
    image_token = tokenizer.convert_tokens_to_ids(IMG_CONTEXT)
    return sum(1 for t in ids if t == image_token)
