"""What every entry point shares: the model and memory options, `--config` files, the one way to load a model
(`ModelOptions.load`) and the one way to end a command (`run_main`: a user error is one line, exit 2).
Options are checked before a model loads; defaults come from the model's recorded memory and frame rate,
and each option given overrides one value (`resolve_memory`, `resolve_fps`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError, VideoChatOnlineError
from .memory import POLICIES, MemorySettings, all_options
from .stream_config import resolve_fps, resolve_memory
from .settings import ATTENTION, check_attention, check_device, check_positive

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's
DTYPES = ("bf16", "fp16", "fp32")
KV_CACHES = ("dynamic", "static")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (`error: ...`) and exit status 2; after
    `add_config_arg(parser)` it reads `--config FILE` as options (`expand_config`)."""

    def error(self, message: str):
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        sys.exit(2)

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        try:
            if getattr(self, "reads_config", False):
                args = expand_config(self, args)
            if getattr(self, "memory_flags", False):
                _add_policy_flags(self, args)
        except VideoChatOnlineError as err:
            self.error(str(err))
        return super().parse_known_args(_negative_lists(args), namespace)


_NEGATIVE_LIST = re.compile(r"-\d+(,-?\d+)+")


def _negative_lists(args: list[str]) -> list[str]:
    """`--capacities -1,2,12` as `--capacities=-1,2,12`: argparse reads a value starting with "-" as an option
    unless it is one number; a list of integers is a value (and then checked as one)."""
    out: list[str] = []
    for arg in args:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE_LIST.fullmatch(arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    """`--config FILE`: the command's options from a YAML file (`expand_config`)."""
    parser.add_argument("--config", metavar="FILE", help="a YAML file of this command's options (names as the flags "
                                                          "without dashes); options given beside it win")
    parser.reads_config = True


def expand_config(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """`--config FILE` replaced by the file's options, placed first so that options given beside it win. The file
    is a YAML mapping of option names (the flags without dashes) to values (a list: several values; true/false:
    a switch); an unknown key is one line naming it (InputError)."""
    argv = list(argv)
    if "--config" not in argv:
        return argv
    at = argv.index("--config")
    if at + 1 == len(argv):
        return argv  # argparse reports the missing value
    path = Path(argv[at + 1])
    import yaml

    try:
        recipe = yaml.safe_load(path.read_text())
    except OSError as err:
        raise InputError(f"--config {path}: cannot read it ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(recipe, dict):
        raise InputError(f"{path}: expected a mapping of option names to values, got {type(recipe).__name__}")
    actions = {}
    for action in parser._actions:  # the first per name: HfArgumentParser adds --no_X switches after --X
        if action.option_strings and action.dest != "config":
            actions.setdefault(action.dest, action)
    options = []
    for key, value in recipe.items():
        action = actions.get(str(key).replace("-", "_"))
        if action is None:
            raise InputError(f"{path}: unknown key {key!r}: not an option of {parser.prog}")
        flag = next(s for s in action.option_strings if s.startswith("--"))
        if action.nargs == 0:  # a switch (store_true)
            options += [flag] if value else []
        elif value is not None:
            options += [flag, *(str(v) for v in (value if isinstance(value, list) else [value]))]
    return options + argv[:at] + argv[at + 2:]


DEBUG_VARIABLE = "VIDEOCHAT_DEBUG"  # set to 1: a user error also prints its full traceback


def run_main(command: Callable[[], int]) -> int:
    """Run an entry point's body: transformers' logging kept to errors, and a user error (any
    `VideoChatOnlineError`) printed as one line `error: ...` with exit status 2 (with VIDEOCHAT_DEBUG=1, after its
    traceback)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # keep the output to answers and our own messages
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        return command()
    except VideoChatOnlineError as err:
        if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            import traceback

            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return 2


# The model
@dataclass(frozen=True)
class ModelOptions:
    """Which checkpoint, and where and how it runs (checked: the device exists, the attention is installed)."""

    model: str
    device: str | None = None
    dtype: str | None = None
    attn: str | None = None
    kv_cache: str = "dynamic"
    compile_vision: str | None = None

    def __post_init__(self):
        check_device(self.device)
        check_attention(self.attn)

    def load(self, **overrides: Any):
        """The ChatEngine these options describe (`overrides`: any other `ChatEngine.from_pretrained` argument)."""
        from .chat import ChatEngine

        return ChatEngine.from_pretrained(self.model, **{
            "device": self.device, "dtype": self.dtype, "attn_implementation": self.attn, "kv_cache": self.kv_cache,
            "compile_vision": self.compile_vision, **overrides})

    def local_config(self):
        """A local checkpoint's model config, from its config.json alone (None for a hub id or a bad folder)."""
        root = Path(self.model).expanduser()
        if not (root / "config.json").is_file():
            return None
        from .errors import CheckpointError
        from .model.checkpoint import read_config

        try:
            return read_config(root)[0]
        except CheckpointError:
            return None


def add_model_args(parser: argparse.ArgumentParser, device: bool = True, default_model: str | None = None) -> None:
    parser.add_argument("--model", required=default_model is None, default=default_model,
                        help="checkpoint directory (this project's or the original InternVL layout) or a hub id"
                             + (f" (default: {default_model})" if default_model else ""))
    if device:
        parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--dtype", default=None, choices=DTYPES, help="default: bf16 on a GPU, fp32 on the CPU")
    parser.add_argument("--attn", default=None, choices=ATTENTION,
                        help="attention implementation (default: flash_attention_2 when installed on a GPU, else sdpa)")
    parser.add_argument("--kv-cache", default="dynamic", choices=KV_CACHES,
                        help="the KV cache a stream's questions reuse: static is preallocated and, on a GPU, lets "
                             "generate compile its decoding step (replies are the same)")
    parser.add_argument("--compile-vision", default=None, choices=COMPILE_MODES,
                        help="run the vision tower under torch.compile in this mode (reduce-overhead: CUDA graphs); "
                             "the first batch of each size compiles")


def model_options(args: argparse.Namespace) -> ModelOptions:
    return ModelOptions(args.model, getattr(args, "device", None), args.dtype, args.attn, args.kv_cache,
                        args.compile_vision)


# The memory and the frame rate
def add_memory_args(parser: argparse.ArgumentParser, mode: bool = True) -> None:
    """`--memory` and every registered policy's options; None everywhere: the model's recorded value, else
    the policy's default."""
    if mode:
        parser.add_argument("--memory", default=None, metavar="NAME",
                            help="the memory policy (default: the model's, else pyramid): "
                                 + "; ".join(f"{name}: {(p.__doc__ or '').strip().splitlines()[0]}"
                                             for name, p in POLICIES.items()) + "; or package.module:Class")
        parser.memory_flags = True
    _add_option_flags(parser)


def _add_option_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for each known policy's option the parser does not have yet."""
    have = parser.__dict__.setdefault("memory_options", set())
    for name, (option, _) in all_options().items():
        if name not in have:
            have.add(name)
            default = "" if "(default:" in option.help else \
                f" (default: the model's, else {option.show(option.default)})"
            parser.add_argument(option.flag, dest=name, default=None, help=option.help + default)


def _add_policy_flags(parser: argparse.ArgumentParser, args: list[str]) -> None:
    """`--memory package.module:Class`: that policy loaded before the options are read, so that its flags exist."""
    for i, arg in enumerate(args):
        value = args[i + 1] if arg == "--memory" and i + 1 < len(args) else arg.partition("=")[2] \
            if arg.startswith("--memory=") else None
        if value:
            POLICIES.get(value)  # a SettingsError naming the known ones
            _add_option_flags(parser)


def memory_overrides(args: argparse.Namespace) -> dict:
    """The memory options given on the command line (checked now, alone: a SettingsError names a bad one)."""
    given = {name: getattr(args, name) for name in all_options() if getattr(args, name, None) is not None}
    if getattr(args, "memory", None) is not None:
        given["mode"] = args.memory
    MemorySettings(**given)
    return given


@dataclass(frozen=True)
class WatchOptions:
    """A model to watch a stream with, and the rate and memory options given; the rest come from the model."""

    model: ModelOptions
    fps: float | None
    memory: dict

    def resolve(self, config) -> tuple[float, MemorySettings]:
        """The frame rate and memory for a loaded model's config."""
        return resolve_fps(self.fps, config), resolve_memory(self.memory, config)


def watch_options(args: argparse.Namespace) -> WatchOptions:
    """The model, --fps and memory options (`stream`, the demo), checked now: against the model's grid too when it
    is a local folder."""
    if args.fps is not None:
        check_positive(args.fps, "--fps")
    options = WatchOptions(model_options(args), args.fps, memory_overrides(args))
    resolve_memory(options.memory, options.model.local_config())
    return options
