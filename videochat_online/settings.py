"""Option values the commands share, checked when the options are read, before any model is loaded: devices,
attention implementations, rates, integer lists. Each check raises a one-line `SettingsError` naming the
option (`--fps -1: must be a finite number > 0`).
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Sequence

from .errors import InputError

ATTENTION = ("sdpa", "flash_attention_2", "eager")


class SettingsError(InputError, ValueError):
    """An option value that cannot be used; the message names the option and the allowed values."""


def show_ints(values: Sequence[int]) -> str:
    """(2, 2, 12) -> "2,2,12", as the options are written."""
    return ",".join(str(v) for v in values)


def parse_int_list(text: str | Sequence[int], option: str) -> tuple[int, ...]:
    """"2,2,12" (or lmms-eval's "2-2-12", where commas would split its model_args, or a sequence) -> (2, 2, 12)."""
    if not isinstance(text, str):
        return tuple(int(v) for v in text)
    separator = "-" if re.fullmatch(r"\d+(-\d+)+", text) else ","
    try:
        return tuple(int(p) for p in text.split(separator))
    except ValueError:
        raise SettingsError(f"{option} {text}: expected integers separated by commas, e.g. 2,2,12") from None


# The most each numeric option may be, by the option's name: the one place that states the ranges (every command,
# the demo and the lmms-eval model check through `check_positive`). Beyond these a value is a typo or an attack: a
# rate no video has, a reply longer than any context, a wait of years.
MOST = {
    "--fps": 240.0, "--folder-fps": 1000.0,  # frames a second
    "--window-seconds": 86400.0, "--max-seconds": 86400.0, "--watch-every": 3600.0, "--stall-seconds": 3600.0,
    "--max-new-tokens": 16384, "--batch-size": 1024, "--buffer": 10000, "--speed": 10000, "--window-max-frames": 100000,
    "--watch-confirm": 1000, "--max-videos": 10**9, "--max-upload-mb": 100000.0, "--port": 65535,
    "--max-question-chars": 100000, "--idle-minutes": 10080.0,
}


WAITING_FRAMES = 16  # live sources: frames that may wait for the model; one more drops the oldest waiting
DECODERS = ("pyav", "decord")  # the video decoders; the first is the default (docs/speed.md, "Decoding": measured)
QUESTION_CHARS = 2000  # a question's most characters (`--max-question-chars`): every command, the demo, watches


def readable(text: str, what: str = "the question") -> str:
    """Text as the tokenizer can take it: what was not valid UTF-8 (bytes a terminal or a command line could not
    decode, kept as surrogates) becomes U+FFFD; nothing else changes."""
    if not isinstance(text, str):
        raise InputError(f"{what}: must be text, got {type(text).__name__}")
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


def check_question(text: str, what: str = "the question", most: int | None = QUESTION_CHARS) -> str:
    """A question typed by a user, the same from every input: `readable`, ends stripped, and refused in one line
    when empty or over `most` characters (None: no limit)."""
    text = readable(text, what).strip()
    if not text:
        raise InputError(f"{what}: the question is empty")
    if most is not None and len(text) > most:
        raise InputError(f"{what}: {len(text):,} characters is over the limit of {most:,} (--max-question-chars)")
    return text


def check_positive(value: float, option: str, integer: bool = False, flag: str | None = None) -> float:
    """A finite number > 0 (an integer >= 1 when `integer`), and at most the `MOST` of the option (or of the CLI
    `flag` it stands for: lmms-eval's `fps` is `--fps`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(f"{option} {value!r}: must be a number")
    if isinstance(value, float) and not math.isfinite(value) or value <= 0 or (integer and value != int(value)):
        kind = "an integer >= 1" if integer else "a finite number > 0"
        raise SettingsError(f"{option} {value}: must be {kind}")
    most = MOST.get(flag or option)
    if most is not None and value > most:
        raise SettingsError(f"{option} {value}: must be at most {most:g}")
    return value


def parse_number(value, option: str, integer: bool = False, flag: str | None = None) -> float | int:
    """A number given as text (lmms-eval's model_args are strings), checked by `check_positive`."""
    try:
        number = int(value) if integer and not isinstance(value, float) else float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{option} {value!r}: must be {'an integer' if integer else 'a number'}") from None
    return check_positive(number, option, integer, flag)


def check_device(device: str | None) -> str | None:
    """A device that exists here: cpu, cuda or cuda:N (N below the GPU count), mps where available."""
    if device is None:
        return None
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise SettingsError(f"--device {device}: not a device; use cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise SettingsError(f"--device {device}: CUDA is not available on this machine; use cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise SettingsError(f"--device {device}: this machine has {torch.cuda.device_count()} GPUs")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise SettingsError(f"--device {device}: MPS is not available on this machine; use cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise SettingsError(f"--device {device}: use cpu, cuda or cuda:N")
    return device


def check_attention(name: str | None) -> str | None:
    """An attention implementation that is installed."""
    if name is None:
        return None
    if name not in ATTENTION:
        raise SettingsError(f"--attn {name}: use one of {', '.join(ATTENTION)}")
    if name == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise SettingsError("--attn flash_attention_2: the flash-attn package is not installed; use sdpa")
    return name
