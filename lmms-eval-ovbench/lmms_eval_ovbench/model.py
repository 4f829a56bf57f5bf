"""VideoChat-Online as an lmms-eval model (the `lmms_eval.models` entry point; arguments and visual inputs in
lmms-eval-ovbench/README.md). The OVBench clips of one video are watched once as a stream, each question put
at its `end` with the preset's prompt, as `videochat-online eval --protocol stream` does. A document that
cannot be answered gets `FAILED_REPLY_PREFIX + reason` (scored wrong, counted) and the run goes on.
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
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
from videochat_online.eval.ovbench import SYSTEM_MESSAGE as OVBENCH_SYSTEM_MESSAGE
from videochat_online.eval import ovo_bench, streamingbench
from videochat_online.eval.benchmarks import BENCHMARKS
from videochat_online.eval.ovbench import VideoTask, question_from_entry
from videochat_online.eval.presets import PRESETS, ProtocolConfig, stream_frames
from videochat_online.eval.protocols import ProtocolRunner
from videochat_online.memory import MemorySettings, all_options
from videochat_online.options import DTYPES, ModelOptions, resolve_fps, resolve_memory
from videochat_online.settings import SettingsError, parse_number
from videochat_online.streaming import StreamingSession, TimedQuestion, answer_along

from . import FAILED_REPLY_PREFIX

log = logging.getLogger("lmms_eval_ovbench")


def manifest() -> ModelManifest:
    return ModelManifest(model_id="videochat_online", simple_class_path="lmms_eval_ovbench.model.VideoChatOnline")


def query_of(benchmark: str, clip: dict):
    """The question a clip of `benchmark` carries, as `videochat-online eval` reads it."""
    if benchmark == "ovo-bench":
        return ovo_bench.queries(clip["row"])[0]
    if benchmark == "streamingbench":
        asked = streamingbench.seconds(clip["entry"]["time_stamp"])
        return streamingbench.Query(f"real/{clip['position']}", "real", clip["video_path"], clip["entry"], asked, asked)
    return question_from_entry(clip["question"], clip["subset"], clip["position"])


def generation_options(gen_kwargs: dict, max_new_tokens: int) -> dict:
    """lmms-eval's generation kwargs as `generate` options (greedy unless a temperature > 0 asks otherwise)."""
    sample = bool(gen_kwargs.get("do_sample")) or float(gen_kwargs.get("temperature") or 0) > 0
    options = {"max_new_tokens": int(gen_kwargs.get("max_new_tokens", max_new_tokens)), "do_sample": sample,
               "num_beams": int(gen_kwargs.get("num_beams") or 1)}
    if sample:
        options.update(temperature=float(gen_kwargs.get("temperature") or 1.0), top_p=float(gen_kwargs.get("top_p") or 1.0))
    return options


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

    def __init__(self, pretrained: str | None = None, device: str | None = None, dtype: str | None = None,
                 attn_implementation: str | None = None, preset: str = "published", fps: float | None = None,
                 video_fps: float | None = None, frame_batch: int = 8, max_new_tokens: int | None = None,
                 system_message: str = "model", batch_size: int = 1, **memory):
        super().__init__()
        if not pretrained:
            raise SettingsError("model_args needs pretrained=PATH_OR_HUB_ID (the checkpoint to evaluate)")
        known = ("memory", *all_options())
        unknown = sorted(set(memory) - set(known))
        if unknown:
            raise SettingsError(f"videochat_online: unknown model_args {', '.join(unknown)}; known: pretrained, "
                                f"device, dtype, attn_implementation, preset, fps, video_fps, frame_batch, "
                                f"max_new_tokens, system_message, {', '.join(known)}")
        overrides = {("mode" if k == "memory" else k): v for k, v in memory.items()}
        # every value checked before the model loads, by the checks the CLI's options go through
        MemorySettings(**overrides)
        if preset not in PRESETS:
            raise SettingsError(f"preset={preset}: use one of {', '.join(PRESETS)}")
        if dtype is not None and dtype not in DTYPES:
            raise SettingsError(f"dtype={dtype}: use one of {', '.join(DTYPES)}")
        fps = None if fps is None else parse_number(fps, "fps", flag="--fps")
        video_fps = None if video_fps is None else parse_number(video_fps, "video_fps", flag="--fps")
        frame_batch = parse_number(frame_batch, "frame_batch", integer=True, flag="--batch-size")
        if max_new_tokens is not None:
            max_new_tokens = parse_number(max_new_tokens, "max_new_tokens", integer=True, flag="--max-new-tokens")
        state = PartialState()
        self._rank, self._world_size = state.process_index, state.num_processes
        system = {"model": None, "ovbench": OVBENCH_SYSTEM_MESSAGE}.get(system_message)
        if system is None and system_message != "model":
            path = Path(system_message)
            if not path.is_file():
                raise InputError(f"system_message={system_message!r}: use model, ovbench or a text file's path")
            system = path.read_text()
        model = ModelOptions(pretrained, device or default_device(state.local_process_index), dtype,
                             attn_implementation)  # the device and attention checked here
        resolve_memory(overrides, model.local_config())  # against the model's grid too, when it is a local folder
        if fps is not None:
            ProtocolConfig(name="stream", preset=preset, fps=fps, memory=MemorySettings(**overrides))
        self.engine = model.load(system_message=system)
        self.memory = resolve_memory(overrides, self.engine.config)  # the checkpoint's, the options on top
        # OVBench clips: the stream protocol under the preset, run as `videochat-online eval` runs it
        rate = fps if fps is not None else PRESETS[preset].fps("stream", self.engine.config.fps)
        self.runners = {}
        self.runners["ovbench"] = ProtocolRunner(self.engine, ProtocolConfig(
            name="stream", preset=preset, fps=rate, memory=self.memory, batch_size=frame_batch,
            max_new_tokens=max_new_tokens, system_message=self.engine.system_message), BENCHMARKS["ovbench"])
        self.video_fps = resolve_fps(video_fps, self.engine.config)
        self.frame_batch, self.max_new_tokens = frame_batch, max_new_tokens or 256
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
        return StreamingSession(self.engine, self.memory.build(self.engine.config.grid_size))

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
                clips[(clip.get("benchmark", "ovbench"), clip["video"], clip.get("folder_fps"))].append((i, clip))
            else:
                direct.append((i, visuals, context, gen_kwargs))
        progress = tqdm(total=len(requests), disable=self.rank != 0, desc="videochat_online")
        for (benchmark, video, folder_fps), items in clips.items():
            for i, text, error in self._watch_clip(benchmark, video, folder_fps, items):
                answers[i] = text if error is None else self._fail(where[i], error)
            progress.update(len(items))
        for i, visuals, context, gen_kwargs in direct:
            try:
                answers[i] = self._answer(visuals, context, generation_options(gen_kwargs, self.max_new_tokens))
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

    def _runner(self, benchmark: str) -> ProtocolRunner:
        """OVBench: the stream protocol under the preset; OVO-Bench, StreamingBench: their scripts along the stream
        at `video_fps`, as `videochat-online eval --benchmark ... --protocol stream` runs them."""
        if benchmark not in self.runners:
            self.runners[benchmark] = ProtocolRunner(self.engine, ProtocolConfig(
                name="stream", preset="project", fps=self.video_fps, memory=self.memory, batch_size=self.frame_batch,
                system_message=self.engine.system_message), BENCHMARKS[benchmark])
        return self.runners[benchmark]

    def _watch_clip(self, benchmark: str, video: str, folder_fps: float | None, items):
        """Watch one video once from its start, answering each question at its time (`ProtocolRunner`, as
        `videochat-online eval` does). Yields (request index, reply, None), or (request index, None, reason) for
        each question left unanswered when the video cannot be read (answers already given stand)."""
        where: dict[str, list[int]] = defaultdict(list)  # question id -> its requests
        questions = []
        for i, clip in items:
            q = query_of(benchmark, clip)
            questions += [] if q.qid in where else [q]
            where[q.qid].append(i)
        answered = set()
        try:
            task = VideoTask("videos", video, Path(video), folder_fps, questions)
            for rec in self._runner(benchmark).answer_video(task, questions):
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
