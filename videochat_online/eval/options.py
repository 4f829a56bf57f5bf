"""The options of an evaluation (`videochat-online eval`, `python -m videochat_online.eval`).

Light to import (no torch, no model): the options are read and checked before anything is loaded, into an
`EvalRequest`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..options import ModelOptions, add_config_arg, add_memory_args, add_model_args, memory_overrides, model_options
from ..settings import SettingsError, check_positive
from ..stream_config import DEFAULT_FPS, FRAME_BATCH, resolve_memory
from .benchmarks import BENCHMARKS, DEFAULT_BENCHMARK, Benchmark
from .presets import ANSWER_BY, DEFAULT_PROTOCOL, PRESETS, PROTOCOLS, PUBLISHED_WINDOW_MAX_FRAMES, ProtocolConfig


@dataclass
class EvalRequest:
    model: ModelOptions
    benchmark: str
    anno_dir: str
    roots: dict[str, str]  # subset -> folder of its videos
    subsets: tuple[str, ...]
    output_dir: Path
    protocol: dict  # ProtocolConfig's arguments as given: fps None (the preset's, else the model's), memory the
    # memory options given (the rest come from the model)
    max_videos: int | None
    allow_failures: bool

    def protocol_config(self, model_config=None) -> ProtocolConfig:
        """The protocol's settings for a model (its config: the recorded memory and frame rate fill what the
        options and the preset leave open)."""
        p, benchmark, protocol = self.protocol, self.bench(), PROTOCOLS.get(self.protocol["name"])
        preset = p["preset"] or benchmark.default_preset
        if preset not in PRESETS:
            raise SettingsError(f"--preset {preset}: use one of {', '.join(PRESETS)}")
        fps = p["fps"] or PRESETS[preset].fps(protocol.sliding, getattr(model_config, "fps", None))
        return ProtocolConfig(**{**p, "preset": preset, "fps": fps,
                                 "memory": resolve_memory(p["memory"], model_config),
                                 "system_message": benchmark.system_message})

    def bench(self) -> Benchmark:
        return BENCHMARKS.get(self.benchmark)()


def add_eval_args(parser: argparse.ArgumentParser) -> None:
    add_config_arg(parser)
    parser.add_argument("--benchmark", default=DEFAULT_BENCHMARK, metavar="NAME",
                        help="; ".join(f"{name}: {b.__doc__.splitlines()[0].rstrip('.')}"
                                       for name, b in BENCHMARKS.items())
                             + f"; or package.module:Class (default: {DEFAULT_BENCHMARK})")
    parser.add_argument("--anno-dir", required=True,
                        help="folder with the benchmark's question files (OVBench: ava.json, coin.json, hirest.json, tao.json)")
    parser.add_argument("--data-root", action="append", default=[], metavar="SUBSET=DIR",
                        help="where a subset's videos or frame folders are (repeat per subset)")
    parser.add_argument("--subsets", default=None, help="comma-separated (default: all of the benchmark's)")
    parser.add_argument("--protocol", default=DEFAULT_PROTOCOL, metavar="NAME",
                        help="; ".join(f"{name}: {p.__doc__.strip().splitlines()[0]}" for name, p in PROTOCOLS.items())
                             + f"; or package.module:Class (default: {DEFAULT_PROTOCOL}). "
                             + "; ".join(f"{b.title}: {', '.join(b().protocols())}" for b in BENCHMARKS.values()))
    parser.add_argument("--preset", choices=list(PRESETS), default=None,
                        help="published: the published OVBench evaluation's frame selection, prompt and reply length "
                             "(docs/evaluation.md); project: by time at the model's rate, a window of frames; "
                             "streaming: as project, a window of seconds (default: "
                             + ", ".join(f"{b.title} {b.default_preset}" for b in BENCHMARKS.values()) + ")")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--fps", type=float, default=None,
                        help="sampling rate (default: the preset's: " + "; ".join(
                            f"{p.name} " + (f"{p.stream_fps:g}" if p.stream_fps else "the model's")
                            + (f", {p.window_fps:g} for window" if p.window_fps else "") for p in PRESETS.values())
                        + f"; else {DEFAULT_FPS:g}). A preset with a frame step turns it into a native frame step")
    add_memory_args(parser)  # stream, recompute, published window: --memory; project window and uniform: their own
    parser.add_argument("--window-seconds", type=float, default=None,
                        help="window: seconds before each question (default: the preset's: "
                             + ", ".join(f"{p.name} {p.window_seconds:g}" for p in PRESETS.values() if p.window_seconds)
                             + "); offline: each clip's length (default: from 0)")
    parser.add_argument("--window-max-frames", type=int, default=PUBLISHED_WINDOW_MAX_FRAMES,
                        help=f"published window: thinned beyond this (default: {PUBLISHED_WINDOW_MAX_FRAMES})")
    parser.add_argument("--batch-size", type=int, default=FRAME_BATCH,
                        help=f"frames per vision-tower batch (default: {FRAME_BATCH})")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: the preset's: " + ", ".join(
        f"{p.name} {p.max_new_tokens}" for p in PRESETS.values()))
    parser.add_argument("--answer-by", choices=ANSWER_BY, default=ANSWER_BY[0],
                        help="generate (the published way): a free reply, read by the scoring rules; likelihood: the "
                             "most likely of the option replies \"(A) text\", ... (OVBench-style multiple choice)")
    parser.add_argument("--max-videos", type=int, default=None, help="evaluate only the first N videos (a smoke test)")
    add_model_args(parser)  # default: the GPU of the process's local rank, else the CPU
    parser.add_argument("--allow-failures", action="store_true",
                        help="exit 0 even when some questions failed (they are scored wrong and listed)")


def check_eval_args(args: argparse.Namespace, files: bool = True) -> EvalRequest:
    """Every option, before anything is loaded (`files`: the question files and video roots too, `check_data`)."""
    benchmark = BENCHMARKS.get(args.benchmark)()
    known, names = benchmark.subsets, benchmark.roots or benchmark.subsets
    roots = {}
    for item in args.data_root:
        name, sep, path = item.partition("=")
        if not sep or name not in names or not path:
            raise InputError(f"--data-root {item}: write it as NAME=DIR with NAME one of {', '.join(names)} "
                             f"(--benchmark {args.benchmark})")
        roots[name] = path
    PROTOCOLS.get(args.protocol)  # a SettingsError naming the known ones
    if args.protocol in benchmark.excluded_protocols:
        raise InputError(f"--protocol {args.protocol}: {benchmark.title} runs {', '.join(benchmark.protocols())}")
    subsets = benchmark.default_subsets if args.subsets is None else \
        tuple(dict.fromkeys(s for s in args.subsets.split(",") if s))  # each once
    if not subsets or any(s not in known for s in subsets):
        raise InputError(f"--subsets {args.subsets}: use one or more of {', '.join(known)}, comma-separated "
                         f"(--benchmark {args.benchmark})")
    if args.max_videos is not None:
        check_positive(args.max_videos, "--max-videos", integer=True)
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--output-dir {out}: exists and is not a directory")
    model = model_options(args)
    protocol = dict(name=args.protocol, preset=args.preset, fps=args.fps, memory=memory_overrides(args),
                    window_seconds=args.window_seconds, window_max_frames=args.window_max_frames,
                    batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, answer_by=args.answer_by)
    if args.answer_by != ANSWER_BY[0] and benchmark.generates_only:
        raise InputError(f"--answer-by {args.answer_by}: {benchmark.title}'s prompts are its own; it is answered by "
                         "generation only")
    request = EvalRequest(model, args.benchmark, args.anno_dir, roots, subsets, out, protocol, args.max_videos,
                          args.allow_failures)
    request.protocol_config(model.local_config())  # every setting checked, against the model when it is local
    if files:
        check_data(benchmark, args.anno_dir, roots, subsets)
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
