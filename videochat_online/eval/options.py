"""The options of an evaluation (`videochat-online eval`, `python -m videochat_online.eval`).

Light to import (no torch, no model): the options are read and checked before anything is loaded, into an
`EvalRequest`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..options import ModelOptions, add_config_arg, add_options, from_args, memory_field, option
from ..settings import DECODERS, WAITING_FRAMES, SettingsError
from ..stream_config import DEFAULT_FPS, FRAME_BATCH, resolve_memory
from .benchmarks import BENCHMARKS, DEFAULT_BENCHMARK, Benchmark
from .presets import ANSWER_BY, DEFAULT_PROTOCOL, PRESETS, PROTOCOLS, PUBLISHED_WINDOW_MAX_FRAMES, ProtocolConfig


def _benchmarks() -> str:
    return "; ".join(f"{name}: {b.__doc__.splitlines()[0].rstrip('.')}" for name, b in BENCHMARKS.items()) + \
        f"; or package.module:Class (default: {DEFAULT_BENCHMARK})"


def _protocols() -> str:
    return ("; ".join(f"{name}: {p.__doc__.strip().splitlines()[0]}" for name, p in PROTOCOLS.items())
            + f"; or package.module:Class (default: {DEFAULT_PROTOCOL}). " + "; ".join(f"{b.title}: {', '.join(b().protocols())}"
                                                        for b in BENCHMARKS.values()))


def _presets() -> str:
    return ("published: the published OVBench evaluation's frame selection, prompt and reply length "
            "(docs/evaluation.md); project: by time at the model's rate, a window of frames; streaming: as project, "
            "a window of seconds (default: " + ", ".join(f"{b.title} {b.default_preset}" for b in BENCHMARKS.values())
            + ")")


def _fps() -> str:
    return ("sampling rate (default: the preset's: " + "; ".join(
        f"{p.name} " + (f"{p.stream_fps:g}" if p.stream_fps else "the model's")
        + (f", {p.window_fps:g} for window" if p.window_fps else "") for p in PRESETS.values())
        + f"; else {DEFAULT_FPS:g}). A preset with a frame step turns it into a native frame step")


@dataclass
class EvalRequest:
    """The options of an evaluation, checked by `check_eval_args`, which fills the last three fields."""

    model: ModelOptions
    benchmark: str = option(_benchmarks, DEFAULT_BENCHMARK, metavar="NAME")
    anno_dir: str = option("folder with the benchmark's question files (OVBench: ava.json, coin.json, hirest.json, "
                           "tao.json)", required=True)
    data_root: list[str] = option("where a subset's videos or frame folders are (repeat per subset)", [],
                                  metavar="SUBSET=DIR")
    subsets: str | None = option("comma-separated (default: all of the benchmark's)")
    protocol: str = option(_protocols, DEFAULT_PROTOCOL, metavar="NAME")
    preset: str | None = option(_presets, choices=list(PRESETS))
    output_dir: str = option("the folder of the predictions, scores and results", required=True)
    fps: float | None = option(_fps)
    # stream, recompute, published window: --memory; project window and uniform: their own
    memory: dict = memory_field()
    window_seconds: float | None = option(lambda: "window: seconds before each question (default: the preset's: "
                                          + ", ".join(f"{p.name} {p.window_seconds:g}" for p in PRESETS.values()
                                                      if p.window_seconds) + "); offline: each clip's length "
                                          "(default: from 0)")
    window_max_frames: int = option("published window: thinned beyond this", PUBLISHED_WINDOW_MAX_FRAMES)
    batch_size: int = option("frames per vision-tower batch", FRAME_BATCH)
    max_new_tokens: int | None = option(lambda: "default: the preset's: " + ", ".join(
        f"{p.name} {p.max_new_tokens}" for p in PRESETS.values()))
    answer_by: str = option("generate (the published way): a free reply, read by the scoring rules; likelihood: the "
                            "most likely of the option replies \"(A) text\", ... (OVBench-style multiple choice)",
                            ANSWER_BY[0], choices=ANSWER_BY)
    speed: float | None = option("realtime: play the videos this many times faster than their own pace (default 1)")
    buffer: int | None = option(f"realtime: frames that may wait for the model; one more drops the oldest waiting "
                                f"(default {WAITING_FRAMES})")
    compare: str | None = option("a finished run's --output-dir (e.g. the stream protocol's on the same questions): "
                                 "its score is shown beside this run's", metavar="DIR")
    decoder: str = option("the video decoder (docs/speed.md, \"Decoding\")", DECODERS[0], choices=DECODERS)
    max_videos: int | None = option("evaluate only the first N videos (a smoke test)", positive=True)
    allow_failures: bool = option("exit 0 even when some questions failed (they are scored wrong and listed)")
    roots: dict[str, str] = field(default_factory=dict)  # subset -> folder of its videos (from --data-root)
    chosen: tuple[str, ...] = ()  # the subsets evaluated
    output: Path = Path()

    def protocol_config(self, model_config=None) -> ProtocolConfig:
        """The protocol's settings for a model (its config: the recorded memory and frame rate fill what the
        options and the preset leave open)."""
        benchmark, protocol = self.bench(), PROTOCOLS.get(self.protocol)
        preset = self.preset or benchmark.default_preset
        if preset not in PRESETS:
            raise SettingsError(f"--preset {preset}: use one of {', '.join(PRESETS)}")
        fps = self.fps or PRESETS[preset].fps(protocol.sliding, getattr(model_config, "fps", None))
        return ProtocolConfig(name=self.protocol, preset=preset, fps=fps, memory=resolve_memory(self.memory, model_config),
                              window_seconds=self.window_seconds, window_max_frames=self.window_max_frames,
                              batch_size=self.batch_size, max_new_tokens=self.max_new_tokens, answer_by=self.answer_by,
                              system_message=benchmark.system_message, speed=self.speed, buffer=self.buffer)

    def bench(self) -> Benchmark:
        return BENCHMARKS.get(self.benchmark)()


def add_eval_args(parser: argparse.ArgumentParser) -> None:
    add_config_arg(parser)
    add_options(parser, EvalRequest)  # the device default: the GPU of the process's local rank, else the CPU


def check_eval_args(args: argparse.Namespace, files: bool = True) -> EvalRequest:
    """Every option, before anything is loaded (`files`: the question files and video roots too, `check_data`)."""
    request = from_args(EvalRequest, args)
    benchmark = request.bench()
    known, names = benchmark.subsets, benchmark.roots or benchmark.subsets
    for item in request.data_root:
        name, sep, path = item.partition("=")
        if not sep or name not in names or not path:
            raise InputError(f"--data-root {item}: write it as NAME=DIR with NAME one of {', '.join(names)} "
                             f"(--benchmark {request.benchmark})")
        request.roots[name] = path
    PROTOCOLS.get(request.protocol)  # a SettingsError naming the known ones
    if request.protocol in benchmark.excluded_protocols:
        raise InputError(f"--protocol {request.protocol}: {benchmark.title} runs {', '.join(benchmark.protocols())}")
    request.chosen = benchmark.default_subsets if request.subsets is None else \
        tuple(dict.fromkeys(s for s in request.subsets.split(",") if s))  # each once
    if not request.chosen or any(s not in known for s in request.chosen):
        raise InputError(f"--subsets {request.subsets}: use one or more of {', '.join(known)}, comma-separated "
                         f"(--benchmark {request.benchmark})")
    request.output = Path(request.output_dir)
    if request.output.exists() and not request.output.is_dir():
        raise InputError(f"--output-dir {request.output}: exists and is not a directory")
    if request.answer_by != ANSWER_BY[0] and benchmark.generates_only:
        raise InputError(f"--answer-by {request.answer_by}: {benchmark.title}'s prompts are its own; it is answered "
                         "by generation only")
    request.protocol_config(request.model.local_config())  # every setting checked, against the model when local
    if request.compare is not None:
        compared_results(request.compare, benchmark)
    if files:
        check_data(benchmark, request.anno_dir, request.roots, request.chosen)
    return request


def check_data(benchmark, anno_dir: str, roots: dict[str, str], subsets: tuple[str, ...]) -> None:
    """The question files and the video roots, before any model loads: every file of the subsets there and valid,
    every root a folder, and every subset with a root."""
    anno = Path(anno_dir)
    if not anno.is_dir():
        raise InputError(f"--anno-dir {anno_dir}: no such directory")
    files = {s: benchmark.question_file(s) for s in subsets}
    missing = [s for s, name in files.items() if not (anno / name).is_file()]
    if missing:
        present = [s for s, name in files.items() if (anno / name).is_file()]
        hint = f"; to evaluate the others, add --subsets {','.join(present)}" if present else ""
        raise InputError(f"--anno-dir {anno_dir}: has no {', '.join(files[s] for s in missing)} (subsets "
                         f"{', '.join(missing)}){hint}")
    if not benchmark.load(anno_dir, roots, subsets):  # every question checked
        raise InputError(f"{anno_dir}: no questions to evaluate in subsets {', '.join(subsets)}")
    for name, root in roots.items():
        if not Path(root).is_dir():
            raise InputError(f"--data-root {name}={root}: no such directory")
    needed = benchmark.roots or subsets
    unset = [name for name in needed if name not in roots]
    if unset:
        raise InputError(f"--data-root: no folder for {', '.join(unset)}; add "
                         + " ".join(f"--data-root {name}=DIR" for name in unset))


def compared_results(folder: str, benchmark: Benchmark) -> dict:
    """The results of a finished run to show beside this one (`--compare`): its results.json, of this benchmark."""
    import json

    file = Path(folder) / "results.json"
    if not file.is_file():
        raise InputError(f"--compare {folder}: has no results.json (give a finished run's --output-dir)")
    try:
        results = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"--compare {file}: cannot be read as JSON ({str(err).splitlines()[0]})") from None
    ran = results.get("meta", {}).get("benchmark") if isinstance(results, dict) else None
    if ran != benchmark.name:
        raise InputError(f"--compare {file}: holds results of {ran or 'no benchmark'}, this run is {benchmark.name}")
    return results
