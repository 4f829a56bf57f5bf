"""VideoChat-Online as an lmms-eval model (the `lmms_eval.models` entry point; arguments and visual inputs in
lmms-eval-ovbench/README.md). A task's clips of one video are watched once as a stream, each question asked at
its time as its benchmark asks it (`Benchmark.query` turns a clip into the question), as `videochat-online eval
--protocol stream` does. A document that cannot be answered gets `FAILED_REPLY_PREFIX + reason` (scored wrong,
counted) and the run goes on.
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import PartialState
from lmms_eval.api.model import lmms
from lmms_eval.models.registry_v2 import ModelManifest
from PIL import Image
from tqdm import tqdm

from videochat_online.chat import default_device
from videochat_online.data.video import open_video
from videochat_online.errors import InputError, VideoChatOnlineError
from videochat_online.eval.benchmarks import BENCHMARKS, VideoTask
from videochat_online.eval.driver import Driver
from videochat_online.eval.presets import PRESETS, ProtocolConfig, stream_frames
from videochat_online.eval.protocols import protocol_of
from videochat_online.memory import MemorySettings
from videochat_online.options import DTYPES, ModelOptions, from_text, memory_field, option
from videochat_online.stream_config import FRAME_BATCH, resolve_fps, resolve_memory
from videochat_online.settings import ATTENTION, SettingsError
from videochat_online.streaming import StreamingSession, TimedQuestion, answer_along

from . import FAILED_REPLY_PREFIX

log = logging.getLogger("lmms_eval_ovbench")


def manifest() -> ModelManifest:
    return ModelManifest(model_id="videochat_online", simple_class_path="lmms_eval_ovbench.model.VideoChatOnline")


def generation_options(gen_kwargs: dict, max_new_tokens: int) -> dict:
    """lmms-eval's generation kwargs as `generate` options (greedy unless a temperature > 0 asks otherwise)."""
    sample = bool(gen_kwargs.get("do_sample")) or float(gen_kwargs.get("temperature") or 0) > 0
    options = {"max_new_tokens": int(gen_kwargs.get("max_new_tokens", max_new_tokens)), "do_sample": sample,
               "num_beams": int(gen_kwargs.get("num_beams") or 1)}
    if sample:
        options.update(temperature=float(gen_kwargs.get("temperature") or 1.0), top_p=float(gen_kwargs.get("top_p") or 1.0))
    return options


@dataclass
class ModelArgs:
    """lmms-eval's `--model_args` for this model (lmms-eval-ovbench/README.md), read and checked by `from_text`."""

    pretrained: str | None = option("the checkpoint: a folder (either layout) or a hub id")
    device: str | None = option("default: the GPU of the process's local rank, else the CPU")
    dtype: str | None = option("default: bf16 on a GPU, fp32 on the CPU", choices=DTYPES)
    attn_implementation: str | None = option("default: flash_attention_2 when installed on a GPU, else sdpa",
                                             choices=ATTENTION)
    frame_size: int | None = option("frames' side in pixels for a Qwen-VL backbone (default: the checkpoint's)",
                                    positive=True)
    preset: str | None = option("every clip's preset (default: each benchmark's own)", choices=tuple(PRESETS))
    fps: float | None = option("every clip's rate (default: the preset's)", flag="--fps", positive=True)
    video_fps: float | None = option("a whole video's rate (default: the model's)", flag="--fps", positive=True)
    frame_batch: int = option("frames per vision-tower batch", FRAME_BATCH, flag="--batch-size", positive=True)
    max_new_tokens: int | None = option("default: the preset's", flag="--max-new-tokens", positive=True)
    system_message: str = option("model (its own), a benchmark's name (its), or a text file", "model")
    batch_size: int = option("lmms-eval's; requests are answered one video at a time", 1, positive=True)
    memory: dict = memory_field()  # memory=NAME and the policy's options


class VideoChatOnline(lmms):
    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
        """The model from lmms-eval's `--model_args`. lmms-eval reports any exception raised while it evaluates as
        a traceback and still exits 0; an exit it lets through. So a bad value ends the run here: one line
        `error: videochat_online: ...` and exit status 2, before anything is evaluated (the class itself raises
        the project's one-line errors, for Python callers)."""
        try:
            return super().create_from_arg_string(arg_string, additional_config)
        except VideoChatOnlineError as err:
            print(f"error: videochat_online: {str(err).splitlines()[0]}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None

    def __init__(self, **model_args):
        super().__init__()
        a = from_text(ModelArgs, model_args, "videochat_online")  # every value checked before the model loads
        if not a.pretrained:
            raise SettingsError("model_args needs pretrained=PATH_OR_HUB_ID (the checkpoint to evaluate)")
        overrides = a.memory
        state = PartialState()
        self._rank, self._world_size = state.process_index, state.num_processes
        system = None  # "model": the model's own; a benchmark's name: that benchmark's; else a text file
        if a.system_message in BENCHMARKS:
            system = BENCHMARKS.get(a.system_message).system_message
        elif a.system_message != "model":
            path = Path(a.system_message)
            if not path.is_file():
                raise InputError(f"system_message={a.system_message!r}: use model, a benchmark's name (ovbench) or "
                                 "a text file's path")
            system = path.read_text()
        model = ModelOptions(a.pretrained, a.device or default_device(state.local_process_index), a.dtype,
                             a.attn_implementation, frame_size=a.frame_size)  # the device and attention checked here
        resolve_memory(overrides, model.local_config())  # against the model's grid too, when it is a local folder
        if a.fps is not None:  # under the preset given, else under each benchmark's own
            for name in {a.preset} if a.preset else {b.default_preset for b in BENCHMARKS.values()}:
                ProtocolConfig(preset=name, fps=a.fps, memory=MemorySettings(**overrides))
        self.engine = model.load(system_message=system)
        self.memory = resolve_memory(overrides, self.engine.config)  # the checkpoint's, the options on top
        self.preset, self.fps, self.max_new_tokens = a.preset, a.fps, a.max_new_tokens
        self.video_fps = resolve_fps(a.video_fps, self.engine.config)
        self.frame_batch = a.frame_batch
        self.drivers: dict[str, Driver] = {}
        self.failures: list[str] = []  # "task/doc_id: reason", this process's

    @property
    def device(self):
        """The device this process runs on (lmms-eval reads it when several processes run)."""
        return self.engine.device

    def _fail(self, where: str, reason: str) -> str:
        reason = reason.splitlines()[0]
        self.failures.append(f"{where}: {reason}")
        log.error("videochat_online: %s failed: %s", where, reason)
        return FAILED_REPLY_PREFIX + reason

    def _session(self) -> StreamingSession:
        return StreamingSession(self.engine, self.engine.new_memory(self.memory))

    def generate_until(self, requests) -> list[str]:
        answers: list[str | None] = [None] * len(requests)
        clips: dict[tuple, list[tuple[int, dict]]] = defaultdict(list)
        direct = []
        where = []  # "task/doc_id" of each request, for failure messages
        for i, request in enumerate(requests):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            where.append(f"{task}/{doc_id}")
            visuals = doc_to_visual(self.task_dict[task][split][doc_id]) or []
            if len(visuals) == 1 and isinstance(visuals[0], dict):
                clip = visuals[0]
                clips[(clip["benchmark"], clip["video"], clip.get("folder_fps"))].append((i, clip))
            else:
                direct.append((i, visuals, context, gen_kwargs))
        progress = tqdm(total=len(requests), disable=self.rank != 0, desc="videochat_online")
        for (benchmark, video, folder_fps), items in clips.items():
            for i, text, error in self._watch_clip(benchmark, video, folder_fps, items):
                answers[i] = text if error is None else self._fail(where[i], error)
            progress.update(len(items))
        for i, visuals, context, gen_kwargs in direct:
            try:
                answers[i] = self._answer(visuals, context, generation_options(gen_kwargs, self.max_new_tokens or 256))
            except InputError as err:
                answers[i] = self._fail(where[i], str(err))
            progress.update(1)
        progress.close()
        self._report_failures(len(requests))
        return answers

    def _report_failures(self, n_requests: int) -> None:
        """One summary on rank 0: how many documents failed over all processes, and the first reasons."""
        failures, total = self.failures, n_requests
        if self.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered = [None] * self.world_size
            torch.distributed.all_gather_object(gathered, (self.failures, n_requests))
            failures = [f for fs, _ in gathered for f in fs]
            total = sum(n for _, n in gathered)
        if failures and self.rank == 0:
            log.error("videochat_online: %d of %d documents failed; first: %s", len(failures), total,
                      "; ".join(failures[:3]))

    def _driver(self, benchmark) -> Driver:
        """The stream protocol under the benchmark's preset (or the `preset` given) at `fps` (else the preset's),
        as `videochat-online eval --benchmark ... --protocol stream` runs it."""
        if benchmark.name not in self.drivers:
            preset = self.preset or benchmark.default_preset
            self.drivers[benchmark.name] = Driver(self.engine, protocol_of(ProtocolConfig(
                preset=preset, fps=self.fps or PRESETS[preset].fps(False, self.engine.config.fps), memory=self.memory,
                batch_size=self.frame_batch, max_new_tokens=self.max_new_tokens,
                system_message=self.engine.system_message)))
        return self.drivers[benchmark.name]

    def _watch_clip(self, name: str, video: str, folder_fps: float | None, items):
        """Watch one video once from its start, answering each question at its time (`Driver`, as
        `videochat-online eval` does). Yields (request index, reply, None), or (request index, None, reason) for
        each question left unanswered when the video cannot be read (answers already given stand)."""
        benchmark = BENCHMARKS.get(name)()
        where: dict[str, list[int]] = defaultdict(list)  # question id -> its requests
        questions = []
        for i, clip in items:
            q = benchmark.query(clip)
            questions += [] if q.qid in where else [q]
            where[q.qid].append(i)
        answered = set()
        try:
            task = VideoTask("videos", video, Path(video), folder_fps, questions)
            for rec in self._driver(benchmark).answer_video(benchmark, task, questions):
                answered.add(rec["id"])
                yield from ((i, rec["reply"], None) for i in where[rec["id"]])
        except InputError as err:
            yield from ((i, None, str(err)) for qid, ids in where.items() if qid not in answered for i in ids)

    def _answer(self, visuals: list, context: str, options: dict) -> str:
        """The reply to one document that is not an OVBench clip; raises InputError when it cannot be answered."""
        if not visuals:
            return self.engine.ask(context, **options).text
        if all(isinstance(v, Image.Image) for v in visuals):
            return self.engine.ask_images([v.convert("RGB") for v in visuals], context, **options).text
        if len(visuals) == 1 and isinstance(visuals[0], (str, Path)):
            source = open_video(visuals[0])
            session = self._session()
            for done in answer_along(session, stream_frames(source, PRESETS["project"], self.video_fps),
                                     [TimedQuestion(float("inf"), context)], batch_size=self.frame_batch, **options):
                return done.reply.text
        raise InputError(f"videochat_online cannot read visuals of types {sorted({type(v).__name__ for v in visuals})}")

    def loglikelihood(self, requests):
        raise NotImplementedError("videochat_online answers generate_until tasks only")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("videochat_online answers single-round tasks only")
