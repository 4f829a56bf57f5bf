"""What every entry point shares: options as request fields (`option`, `add_options`, `from_args`), the model and
memory options, `--config` files, the one way to load a model (`ModelOptions.load`) and the one way to end a
command (`run_main`: a user error is one line, exit 2). Options are checked before a model loads; defaults come
from the model's recorded memory and frame rate, and each option given overrides one value (`resolve_memory`,
`resolve_fps`).

A command's options are the fields of one dataclass: each says its help, default and checks once (`option`), and
the command's flags, its `--config` keys and the lmms-eval model's arguments are made from them:

    @dataclass
    class ToyRequest:
        model: ModelOptions                                    # nested: its fields are options too
        speed: float = option("how fast", 2.5, positive=True)  # --speed SPEED, checked > 0 when given
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError, VideoChatOnlineError
from .memory import POLICIES, MemorySettings, all_options
from .memory.config import DEFAULT_MODE
from .stream_config import DEFAULT_FPS, resolve_fps, resolve_memory
from .settings import ATTENTION, SettingsError, check_attention, check_device, check_positive, parse_number

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
                args = expand_config(self.prog, args, self.__dict__.get("flags", {}))
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


# Options as fields
def option(help: str | Callable[[], str], default: Any = None, *, flag: str | None = None, choices=None,
           metavar: str | None = None, positive: bool = False, positional: bool = False, required: bool = False):
    """A dataclass field that is a command's option: its help (text, or a function for help made from a registry),
    default, flag (default: `--name-with-dashes`), choices, and `positive`: a number checked by `check_positive`
    when given. A bool field is a switch, a list field is repeated (`--image a --image b`)."""
    spec = dict(help=help, flag=flag, choices=choices, metavar=metavar, positive=positive, positional=positional,
                required=required)
    if isinstance(default, list):
        return field(default_factory=list, metadata={"option": spec})
    return field(default=default, metadata={"option": spec})


def option_fields(cls) -> list[tuple[dataclasses.Field, dict, type]]:
    """(field, its option spec, its value type) for each option field of a dataclass, in order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if "option" in f.metadata:
            kind = hints[f.name]
            if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
                kind = next(k for k in typing.get_args(kind) if k is not type(None))
            out.append((f, f.metadata["option"], typing.get_origin(kind) or kind))
    return out


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata["option"]["flag"] or "--" + f.name.replace("_", "-")


def default_of(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def memory_field():
    """A command's memory options: `--memory` and every known policy's options, read as the dict of those given."""
    return field(default_factory=dict, metadata={"memory": True})


def parts(cls) -> list[tuple[str, Any]]:
    """A dataclass's fields that are made of options: (name, a nested options dataclass or "memory")."""
    hints = typing.get_type_hints(cls)
    return [(f.name, "memory" if f.metadata.get("memory") else hints[f.name]) for f in dataclasses.fields(cls)
            if f.metadata.get("memory") or dataclasses.is_dataclass(hints[f.name])]


def add_options(parser: argparse.ArgumentParser, cls, **defaults: Any) -> None:
    """A flag for each option field of `cls` and of the options dataclasses it holds, with its help, default
    (`defaults` replace some, e.g. the demo's model) and choices; the parser's `--config` reads the same names."""
    for _, part in parts(cls):
        add_memory_args(parser) if part == "memory" else add_options(parser, part, **defaults)
    flags = parser.__dict__.setdefault("flags", {})
    for f, spec, kind in option_fields(cls):
        default = defaults.get(f.name, default_of(f))
        text = spec["help"]() if callable(spec["help"]) else spec["help"]
        if default not in (None, False, []) and "default:" not in text:
            text += f" (default: {default:g})" if isinstance(default, float) else f" (default: {default})"
        if spec["positional"]:
            parser.add_argument(f.name, nargs=None if spec["required"] else "?", default=default, help=text)
            continue
        flag = flag_of(f)
        flags[f.name] = (flag, "switch" if kind is bool else "repeat" if kind is list else "value")
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action="store_true", help=text)
        elif kind is list:
            parser.add_argument(flag, dest=f.name, action="append", default=[], metavar=spec["metavar"], help=text)
        else:
            parser.add_argument(flag, dest=f.name, type=kind, default=default, choices=spec["choices"],
                                metavar=spec["metavar"], required=spec["required"] and default is None, help=text)


def check_fields(options) -> None:
    """Every `positive` option of a dataclass instance that is set, checked (`check_positive`, with its flag)."""
    for f, spec, kind in option_fields(type(options)):
        value = getattr(options, f.name)
        if spec["positive"] and value is not None:
            check_positive(value, flag_of(f), integer=kind is int)


def from_args(cls, args: argparse.Namespace, **given: Any):
    """The dataclass of a command's options from its parsed flags, with the options dataclasses it holds and its
    memory options (`given`: fields that are not options), every `positive` one checked."""
    values = {name: memory_overrides(args) if part == "memory" else from_args(part, args) for name, part in parts(cls)}
    values.update({f.name: getattr(args, f.name) for f, _, _ in option_fields(cls) if hasattr(args, f.name)})
    options = cls(**values, **given)
    check_fields(options)
    return options


def from_text(cls, given: dict[str, Any], where: str):
    """The dataclass of options from name=value pairs (lmms-eval's model_args: text, or numbers it has read), each
    value read as its field's type and checked as its flag is (a name beside its fields: the class's memory field,
    whose own name is the policy's); an unknown name or a bad value is one SettingsError."""
    options = {f.name: (f, spec, kind) for f, spec, kind in option_fields(cls)}
    memory = [name for name, part in parts(cls) if part == "memory"]
    mine = {k: v for k, v in given.items() if k in options}
    rest = {("mode" if k in memory else k): v for k, v in given.items() if k not in options}
    if memory:
        if rest.get("mode"):
            POLICIES.get(rest["mode"])  # a policy named by path: known before its options are checked
        known = ["memory", *all_options()]
        unknown = sorted(k for k in rest if k != "mode" and k not in known)
    else:
        unknown, known = sorted(rest), []
    if unknown:
        raise SettingsError(f"{where}: unknown model_args {', '.join(unknown)}; known: {', '.join([*options, *known])}")
    values = {}
    for name, value in mine.items():
        f, spec, kind = options[name]
        if kind in (int, float) and value is not None:
            value = parse_number(value, name, integer=kind is int, flag=flag_of(f)) if spec["positive"] else \
                kind(value)
        elif spec["choices"] is not None and value is not None and value not in spec["choices"]:
            raise SettingsError(f"{name}={value}: use one of {', '.join(spec['choices'])}")
        values[name] = value
    if memory:
        MemorySettings(**rest)  # every memory value checked, by the checks the CLI's options go through
        values[memory[0]] = rest
    return cls(**values)


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    """`--config FILE`: the command's options from a YAML file (`expand_config`)."""
    parser.add_argument("--config", metavar="FILE", help="a YAML file of this command's options (names as the flags "
                                                          "without dashes); options given beside it win")
    parser.reads_config = True


def expand_config(prog: str, argv: list[str], flags: dict[str, tuple[str, str]]) -> list[str]:
    """`--config FILE` replaced by the file's options, placed first so that options given beside it win. The file
    is a YAML mapping of option names (`flags`: name -> (flag, "switch" | "repeat" | "value")) to values (true or
    false for a switch; a list: the option repeated, or its values); an unknown key is one line naming it."""
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
    options = []
    for key, value in recipe.items():
        flag, kind = flags.get(str(key).replace("-", "_"), (None, None))
        values = [str(v) for v in (value if isinstance(value, list) else [] if value is None else [value])]
        if flag is None:
            raise InputError(f"{path}: unknown key {key!r}: not an option of {prog}")
        if kind == "switch":
            options += [flag] if value else []
        elif kind == "repeat":
            options += [part for v in values for part in (flag, v)]
        elif values:
            options += [flag, *values]
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

    model: str = option("checkpoint directory or hub id: this project's or the original InternVL layout, or "
                        "Qwen3-VL / Qwen2.5-VL in the transformers layout (the backbone comes from its model_type)",
                        required=True)
    device: str | None = option("cpu, cuda, cuda:1 ... (default: cuda when available)")
    dtype: str | None = option("default: bf16 on a GPU, fp32 on the CPU", choices=DTYPES)
    attn: str | None = option("attention implementation (default: flash_attention_2 when installed on a GPU, else "
                              "sdpa)", choices=ATTENTION)
    kv_cache: str = option("the KV cache a stream's questions reuse: static is preallocated and, on a GPU, lets "
                           "generate compile its decoding step (replies are the same)", "dynamic", choices=KV_CACHES)
    compile_vision: str | None = option("run the vision tower under torch.compile in this mode (reduce-overhead: "
                                        "CUDA graphs); the first batch of each size compiles", choices=COMPILE_MODES)
    frame_size: int | None = option("frames' side in pixels for a backbone of dynamic resolution (Qwen-VL); one size "
                                    "for the whole stream (default: the checkpoint's, else 448)", positive=True)
    backbone: str | None = option("the adapter to run the checkpoint with, when its model_type names none: a "
                                  "registered backbone or package.module:Class (default: by model_type)")

    def __post_init__(self):
        check_device(self.device)
        check_attention(self.attn)

    def load(self, **overrides: Any):
        """The engine these options describe, by the checkpoint's backbone (`overrides`: any other argument of its
        `from_pretrained`)."""
        from .backbones import load_engine

        given = {"frame_size": self.frame_size} if self.frame_size is not None else {}
        return load_engine(self.model, self.backbone, **{
            "device": self.device, "dtype": self.dtype, "attn_implementation": self.attn, "kv_cache": self.kv_cache,
            "compile_vision": self.compile_vision, **given, **overrides})

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


# The memory and the frame rate
def add_memory_args(parser: argparse.ArgumentParser) -> None:
    """`--memory` and every registered policy's options; None everywhere: the model's recorded value, else
    the policy's default."""
    parser.__dict__.setdefault("flags", {})["memory"] = ("--memory", "value")
    parser.add_argument("--memory", default=None, metavar="NAME",
                        help=f"the memory policy (default: the model's, else {DEFAULT_MODE}): "
                             + "; ".join(f"{name}: {(p.__doc__ or '').strip().splitlines()[0]}"
                                         for name, p in POLICIES.items()) + "; or package.module:Class")
    parser.memory_flags = True
    _add_option_flags(parser)


def _add_option_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for each known policy's option the parser does not have yet."""
    flags = parser.__dict__.setdefault("flags", {})
    for name, (option, _) in all_options().items():
        if name not in flags:
            flags[name] = (option.flag, "value")
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
    """A model to watch a stream with, and the rate and memory options given (`stream`, the demo); the rest come
    from the model. Checked when made: against the model's grid too when it is a local folder."""

    model: ModelOptions
    fps: float | None = option(f"frames sampled per second of video (default: the model's, else {DEFAULT_FPS:g})",
                               positive=True)
    memory: dict = memory_field()

    def __post_init__(self):
        resolve_memory(self.memory, self.model.local_config())

    def resolve(self, config) -> tuple[float, MemorySettings]:
        """The frame rate and memory for a loaded model's config."""
        return resolve_fps(self.fps, config), resolve_memory(self.memory, config)
