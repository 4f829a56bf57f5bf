"""Options are fields: one dataclass field gives a command its flag, its help and default, its `--config` key, its
check, and (for the lmms-eval model) its model_args name."""

from dataclasses import dataclass

import pytest

from videochat_online.options import (
    ModelOptions,
    Parser,
    add_config_arg,
    add_options,
    from_args,
    from_text,
    memory_field,
    option,
)
from videochat_online.settings import SettingsError


@dataclass
class Toy:
    model: ModelOptions
    speed: float = option("how fast", 2.5, positive=True)
    loud: bool = option("shout")
    name: list[str] = option("a name (repeat for several)", [])
    memory: dict = memory_field()


def parser() -> Parser:
    p = Parser(prog="toy")
    add_config_arg(p)
    add_options(p, Toy)
    return p


def test_one_field_is_a_flag_a_config_key_and_a_check(tmp_path):
    config = tmp_path / "toy.yaml"
    config.write_text("speed: 3\nloud: true\nname: [a, b]\nwindow: 5\nmodel: m\n")
    toy = from_args(Toy, parser().parse_args(["--config", str(config), "--name", "c"]))
    assert (toy.model.model, toy.speed, toy.loud, toy.name, toy.memory) == ("m", 3.0, True, ["a", "b", "c"],
                                                                             {"window": "5"})
    text = " ".join(parser().format_help().split())
    assert "--speed SPEED how fast (default: 2.5)" in text and "--loud shout" in text and "--window" in text
    with pytest.raises(SettingsError, match=r"--speed 0.0: must be a finite number > 0"):
        from_args(Toy, parser().parse_args(["--model", "m", "--speed", "0"]))


@dataclass
class Args:
    pretrained: str | None = option("the checkpoint")
    fps: float | None = option("a rate", flag="--fps", positive=True)
    dtype: str | None = option("a type", choices=("bf16", "fp32"))
    memory: dict = memory_field()


def test_model_args_are_read_from_the_same_fields():
    args = from_text(Args, {"pretrained": "m", "fps": "2", "memory": "window", "window": 4}, "toy")
    assert (args.pretrained, args.fps, args.memory) == ("m", 2.0, {"mode": "window", "window": 4})
    with pytest.raises(SettingsError, match="toy: unknown model_args speed; known: pretrained, fps, dtype, memory"):
        from_text(Args, {"speed": 1}, "toy")
    with pytest.raises(SettingsError, match="fps 1000.0: must be at most 240"):
        from_text(Args, {"fps": 1000}, "toy")
    with pytest.raises(SettingsError, match="dtype=fp8: use one of bf16, fp32"):
        from_text(Args, {"dtype": "fp8"}, "toy")


def test_the_lmms_eval_models_arguments_are_documented():
    from pathlib import Path

    from lmms_eval_ovbench.model import ModelArgs
    from videochat_online.options import option_fields

    readme = (Path(__file__).resolve().parents[1] / "lmms-eval-ovbench" / "README.md").read_text()
    assert [f.name for f, _, _ in option_fields(ModelArgs) if f"`{f.name}" not in readme] == []


def test_every_command_reads_its_options_from_a_config_file(tmp_path):
    from videochat_online.cli import StreamRequest, build_parser

    config = tmp_path / "stream.yaml"
    config.write_text("ask: ['1:Is it here?', '2:And now?']\nfps: 1\njson: true\ncapacities: 1,1,2\n")
    args = build_parser().parse_args(["stream", "clip.mp4", "--model", "m", "--config", str(config), "--fps", "3"])
    request = from_args(StreamRequest, args)
    # --fps given beside the file wins
    assert (request.ask, request.json, request.stream.fps) == (["1:Is it here?", "2:And now?"], True, 3.0)
    assert request.stream.memory == {"capacities": "1,1,2"}
