"""The tiny checkpoints' tokenizer: byte-level BPE trained offline on a built-in corpus, with the special tokens
of every template this project writes."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ..conversation import IMG_CONTEXT, IMG_END, IMG_START

SPECIAL_TOKENS = [
    "<unk>", "<s>", "</s>", "<|endoftext|>",
    "<|system|>", "<|user|>", "<|assistant|>", "<|end|>",  # phi3-chat
    "<|im_start|>", "<|im_end|>",  # ChatML
    IMG_START, IMG_END, IMG_CONTEXT, "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>",
]

_WORDS = """the a man woman person people child dog cat car ball table chair door window kitchen street room
video frame scene camera time second seconds minute before after now next then while during holding hands
walks runs sits stands opens closes picks puts takes cuts pours mixes drives throws catches looks talks
what where when why how which who is are was were will be doing happened happen happens question answer
options select best option red blue green white black left right top bottom front behind near far up down
cooking cleaning playing reading writing dancing riding jumping swimming climbing painting building
first second third last start end begin finish step action object location position count many few""".split()


def _corpus() -> list[str]:
    """Deterministic training text: word sequences, numbers, times and prompt fragments."""
    lines = []
    for i, word in enumerate(_WORDS):
        tail = " ".join(_WORDS[(i * 7 + k) % len(_WORDS)] for k in range(12))
        lines.append(f"{word.capitalize()} {tail}. Frame{i + 1} at {i * 0.5:.1f}s: ({'ABCDE'[i % 5]}) {i}")
    lines += [f"Question at {t}s: what is the person doing?\nOptions:\n(A) yes\n(B) no\nAnswer:" for t in range(40)]
    return lines * 4


def train_tokenizer(vocab_size: int = 1024, extra_corpus: list[str] | None = None) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with the model's special tokens, trained on a built-in corpus (and
    `extra_corpus`, text a model will read and write, e.g. the synthetic world's questions)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus() + list(extra_corpus or []), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="<|endoftext|>",
                                   unk_token="<unk>", pad_token="<|endoftext|>")
