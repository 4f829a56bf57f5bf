"""Supervised fine-tuning (stage 1 offline, stage 2 online + offline) on transformers' Trainer (docs/training.md).

    python -m videochat_online.train.sft --config shell/sft/videochat_online_4b_stage1.yaml \
        --model_name_or_path /ckpt/InternVL2-4B --output_dir runs/stage1

`main()` parses, builds, trains and saves a checkpoint in this project's layout (LoRA merged), with the
resolved arguments in `output_dir/run_config.json`.
"""

from __future__ import annotations


import json
import logging
import sys
import warnings
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from functools import partial
from pathlib import Path

from transformers import HfArgumentParser, Trainer, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..errors import InputError
from ..model import load_pretrained
from ..model.checkpoint import resolve, save_state_dict
from ..memory import MemorySettings, all_options
from ..options import add_config_arg, expand_config, run_main
from ..stream_config import TRAINING_FPS, StreamingConfig
from .dataset import DataConfig, SFTDataset, collate, load_meta
from .lora import LORA_ALPHA_PER_RANK, lora_targets, merge_lora_state
from .failures import FailureLedger

log = logging.getLogger("videochat_online.train")


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "checkpoint directory (either layout) or hub id"})
    freeze_vision: bool = field(default=True, metadata={"help": "freeze the vision tower"})
    freeze_projector: bool = field(default=False, metadata={"help": "freeze mlp1"})
    freeze_llm: bool = field(default=False, metadata={"help": "freeze the language model"})
    use_llm_lora: int = field(default=0, metadata={"help": "LoRA rank for the LLM (0: full fine-tuning)"})
    use_vision_lora: int = field(default=0, metadata={"help": "LoRA rank for the vision tower (0: none)"})
    attn_implementation: str | None = field(default=None, metadata={"help": "sdpa, flash_attention_2 or eager"})
    drop_path_rate: float = field(default=0.1, metadata={"help": "stochastic depth of the vision layers while "
                                                                 "training (the published recipe's 0.1)"})


@dataclass
class _DataArguments:
    meta_path: list[str] = field(metadata={"help": "meta file(s) naming the training sets; several are mixed"})
    data_dir: str | None = field(default=None, metadata={"help": "base of relative paths (default: each meta file's folder)"})
    max_seq_length: int = 32768
    fps: float | None = field(default=None, metadata={"help": "video frames per second, recorded with the model "
                                                              "(default: the start checkpoint's, else 1)"})
    min_num_frames: int = DataConfig.min_frames
    max_num_frames: int = DataConfig.max_frames
    max_dynamic_patch: int | None = None
    max_failed_samples: int = 100
    memory: str | None = field(default=None, metadata={"help": "the memory policy recorded with the model, which "
                                                               "arranges video frames' tokens (default: the start "
                                                               "checkpoint's)"})


def _memory_option(option) -> tuple:
    shown = "" if "(default:" in option.help else f", else {option.show(option.default)}"
    return option.name, str | None, field(default=None, metadata={
        "help": f"{option.help} (default: the start checkpoint's{shown})"})


# the data arguments, with a field for every memory policy's options
DataArguments = make_dataclass("DataArguments", [_memory_option(o) for o, _ in all_options().values()],
                               bases=(_DataArguments,))


def prepare_model(model, args: ModelArguments):
    """Drop-path, freeze switches, then LoRA adapters (their own weights train whatever the freeze switches say)."""
    model.set_vision_drop_path(args.drop_path_rate)
    for part, frozen in ((model.vision_model, args.freeze_vision), (model.mlp1, args.freeze_projector),
                         (model.language_model, args.freeze_llm)):
        part.requires_grad_(not frozen)
    if args.use_llm_lora or args.use_vision_lora:
        from peft import LoraConfig, get_peft_model

        for name, rank in (("language_model", args.use_llm_lora), ("vision_model", args.use_vision_lora)):
            if rank:
                part = getattr(model, name)
                config = LoraConfig(r=rank, lora_alpha=LORA_ALPHA_PER_RANK * rank, lora_dropout=0.05,
                                    target_modules=lora_targets(part))
                setattr(model, name, get_peft_model(part, config))
    return model


def save_trained(trainer: Trainer, tokenizer, out: Path, scaling: float, source: Path | None = None) -> None:
    """The final checkpoint, full weights (gathered from ZeRO-3 shards), LoRA merged: in this project's layout, or
    for a Qwen-VL model in the transformers layout with the start checkpoint's (`source`) processor files."""
    model = trainer.deepspeed if trainer.is_deepspeed_enabled else trainer.model
    state = trainer.accelerator.get_state_dict(model)  # a collective under ZeRO-3: every rank calls it
    if trainer.is_world_process_zero():
        config = trainer.accelerator.unwrap_model(trainer.model).config
        merged = merge_lora_state(state, scaling)
        if isinstance(trainer, QwenSFTTrainer):
            from .qwen import copy_processor_files

            merged = {name.removeprefix("qwen."): t for name, t in merged.items()}
            save_state_dict(config, tokenizer, merged, out)
            copy_processor_files(source, out)
        else:
            save_state_dict(config, tokenizer, merged, out)


class SFTTrainer(Trainer):
    """Trainer whose length-grouped sampler uses the dataset's own length estimates (no media is read), and
    which counts the samples that failed to load once each over workers and ranks (`failures.py`)."""

    def __init__(self, *args, max_failed_samples: int = 100, **kwargs):
        super().__init__(*args, **kwargs)
        self.failures = FailureLedger(max_failed_samples)

    def _save_checkpoint(self, model, trial, *args, **kwargs):
        """A checkpoint, and beside it the failed samples so far (`FailureLedger.save`)."""
        super()._save_checkpoint(model, trial, *args, **kwargs)
        failed = self.failures.gathered()
        folder = Path(self.args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        if self.is_world_process_zero() and folder.is_dir():
            self.failures.save(folder, failed)

    def training_step(self, model, inputs, *args, **kwargs):
        self.failures.add(inputs.pop("failed_samples", []))
        return super().training_step(model, inputs, *args, **kwargs)

    def log(self, logs: dict, *args, **kwargs) -> None:
        """Every logging step (on every rank): the run's failed samples so far, and the stop rule."""
        failed = self.failures.gathered()
        logs["failed_samples"] = len(failed)
        super().log(logs, *args, **kwargs)
        self.failures.check(failed)

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy == "group_by_length" and hasattr(dataset, "lengths"):
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=dataset.lengths)
        return super()._get_train_sampler(train_dataset)


class QwenSFTTrainer(SFTTrainer):
    """SFTTrainer for a Qwen-VL backbone (`train/qwen.py`): its model is `QwenForStreamTraining`."""


def build(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments):
    specs = [spec for path in data_args.meta_path for spec in load_meta(path, data_args.data_dir)]  # fail early
    overrides = {k: getattr(data_args, k) for k in all_options() if getattr(data_args, k) is not None}
    if data_args.memory is not None:
        overrides["mode"] = data_args.memory
    MemorySettings(**overrides)  # a bad value is one line before the model loads
    dtype = "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32"
    root = resolve(model_args.model_name_or_path)
    backbone = backbone_of(root)
    from ..backbones.qwen_vl import QwenVLEngine

    if issubclass(backbone, QwenVLEngine):
        return build_qwen(backbone, root, model_args, data_args, training_args, specs, overrides, dtype)
    model, tokenizer = load_pretrained(root, dtype=dtype, attn_implementation=model_args.attn_implementation)
    # the start checkpoint's rate and memory, the options on top, recorded in the trained checkpoint
    stream = StreamingConfig.resolve(model.config, data_args.fps, overrides, default_fps=TRAINING_FPS)
    model.config.memory, model.config.fps = stream.memory.to_dict(), stream.fps
    memory = stream.memory
    model = prepare_model(model, model_args)
    data = DataConfig(max_seq_length=data_args.max_seq_length, fps=stream.fps, min_frames=data_args.min_num_frames,
                      max_frames=data_args.max_num_frames, memory=memory, max_dynamic_patch=data_args.max_dynamic_patch,
                      max_failed_samples=data_args.max_failed_samples, seed=training_args.seed)
    dataset = SFTDataset(specs, tokenizer, model.config, data)
    # The collator builds exactly the model's inputs, plus `failed_samples` for the trainer: nothing to prune.
    training_args.remove_unused_columns = False
    trainer = SFTTrainer(model=model, args=training_args, train_dataset=dataset, processing_class=tokenizer,
                         data_collator=partial(collate, pad_token_id=tokenizer.pad_token_id or 0),
                         max_failed_samples=data_args.max_failed_samples)
    return trainer, dataset


def build_qwen(backbone, root: Path, model_args, data_args, training_args, specs, overrides: dict, dtype: str):
    """`build` for a Qwen-VL start checkpoint: the same data, memory and rate rules, its own samples and loss."""
    from .qwen import QwenForStreamTraining, QwenSampleBuilder, collate_qwen, load_for_training, prepare_qwen

    engine = load_for_training(backbone, root, dtype, model_args.attn_implementation)
    stream = StreamingConfig.resolve(engine.config, data_args.fps, overrides, default_fps=TRAINING_FPS)
    model = prepare_qwen(engine.model.train(), model_args)
    model.config.streaming = {"frame_size": engine.layout.frame_size, "fps": stream.fps,
                              "memory": stream.memory.to_dict()}
    data = DataConfig(max_seq_length=data_args.max_seq_length, fps=stream.fps, min_frames=data_args.min_num_frames,
                      max_frames=data_args.max_num_frames, memory=stream.memory,
                      max_failed_samples=data_args.max_failed_samples, seed=training_args.seed)
    builder = QwenSampleBuilder(engine.tokenizer, engine.layout, data)
    dataset = SFTDataset(specs, engine.tokenizer, None, data, builder=builder)
    training_args.remove_unused_columns = False
    trainer = QwenSFTTrainer(model=QwenForStreamTraining(model, engine.layout), args=training_args,
                             train_dataset=dataset, processing_class=engine.tokenizer,
                             data_collator=partial(collate_qwen, pad_token_id=engine.tokenizer.pad_token_id or 0),
                             max_failed_samples=data_args.max_failed_samples)
    return trainer, dataset


def backbone_of(root: Path) -> type:
    """The backbone adapter of a start checkpoint, by its config's model_type (the InternVL family's when unread)."""
    from ..backbones import BACKBONES, backbone_for, model_type_of

    model_type = model_type_of(root)
    return backbone_for(model_type, str(root / "config.json")) if model_type else BACKBONES.get("internvl")


def resume_folder(value: str | bool | None, out: Path) -> Path | None:
    """The checkpoint folder `--resume_from_checkpoint` names: a folder, or True/true for the newest checkpoint-N in
    the output folder; one line when there is none or it is torn (a save cut short has no trainer_state.json).
    Resuming reads the optimizer's and DeepSpeed's pickled state: resume only from folders you trust."""
    if value in (None, False, "", "False", "false"):
        return None
    if value in (True, "True", "true"):
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(str(out)) if out.is_dir() else None
        if last is None:
            raise InputError(f"--resume_from_checkpoint {value}: {out} holds no {PREFIX_CHECKPOINT_DIR}-N folder to "
                             "resume from")
        folder = Path(last)
    else:
        folder = Path(value)
    if not folder.is_dir():
        raise InputError(f"--resume_from_checkpoint {value}: no such checkpoint folder")
    if not (folder / "trainer_state.json").is_file():
        raise InputError(f"{folder}: not a whole checkpoint (no trainer_state.json: a save cut short?); resume from "
                         "an earlier one")
    return folder


def train(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> Path:
    """Train and save; returns the output directory holding the final checkpoint."""
    # transformers >= 5.2x calls it activation checkpointing (`--gradient_checkpointing` is its alias); 5.17 only
    # knows gradient checkpointing. The launchers pass `--gradient_checkpointing True`, which both accept.
    name = "activation_checkpointing" if hasattr(training_args, "activation_checkpointing") else "gradient_checkpointing"
    if getattr(training_args, name):
        setattr(training_args, f"{name}_kwargs", getattr(training_args, f"{name}_kwargs") or {"use_reentrant": False})
    trainer, dataset = build(model_args, data_args, training_args)
    out = Path(training_args.output_dir)
    if trainer.is_world_process_zero():
        out.mkdir(parents=True, exist_ok=True)
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in trainer.model.parameters())
        config = {"model": asdict(model_args), "data": asdict(data_args), "training": training_args.to_dict(),
                  "samples": len(dataset), "trainable_parameters": trainable, "parameters": total}
        (out / "run_config.json").write_text(json.dumps(config, indent=2, default=str))
        log.info("%d samples from %d datasets; %.1fM of %.1fM parameters train", len(dataset), len(dataset.specs),
                 trainable / 1e6, total / 1e6)
    resume = resume_folder(training_args.resume_from_checkpoint, out)
    if resume is not None:
        trainer.failures.restore(resume)  # the samples that failed before the checkpoint count too
    try:
        trainer.train(resume_from_checkpoint=None if resume is None else str(resume))
    finally:  # the failures met, written even when they stopped the run
        failed = trainer.failures.gathered()
        if trainer.is_world_process_zero():
            out.mkdir(parents=True, exist_ok=True)
            trainer.failures.write(out, failed)
            if failed:
                log.warning("%d samples failed to load and were skipped (%s)", len(failed), out / "failed_samples.json")
    trainer.failures.check(failed)
    save_trained(trainer, trainer.processing_class, out, scaling=LORA_ALPHA_PER_RANK,  # loadable as it started
                 source=resolve(model_args.model_name_or_path))
    if trainer.is_world_process_zero():
        trainer.state.save_to_json(str(out / "trainer_state.json"))  # the loss history, among others
    return out


CPU_FLAGS = "--use_cpu True --bf16 False --deepspeed ''"  # a GPU recipe in one process on the CPU


class RecipeParser(HfArgumentParser):
    """The three argument dataclasses, with `--config RECIPE.yaml` (`options.expand_config`)."""

    def __init__(self):
        super().__init__((ModelArguments, DataArguments, TrainingArguments))
        add_config_arg(self)  # read by `parse`, not by argparse

    def parse(self, argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
        flags = {f.name: (f"--{f.name}", "value") for kind in (ModelArguments, DataArguments, TrainingArguments)
                 for f in fields(kind)}  # a bool as `--name True`, a list as `--name a b`
        args = expand_config(self.prog, sys.argv[1:] if argv is None else argv, flags)
        try:
            with warnings.catch_warnings():  # transformers 5.2x renamed it; the recipes keep the name both know
                warnings.filterwarnings("ignore", "`gradient_checkpointing` is deprecated", FutureWarning)
                return self.parse_args_into_dataclasses(args=args)[:3]  # the fourth: --config itself
        except ValueError as err:  # TrainingArguments' own checks: a setting this machine cannot run
            message = str(err).strip().splitlines()[0]
            if "bf16" in message or "fp16" in message or "gpu" in message.lower():
                import torch

                if not torch.cuda.is_available():
                    raise InputError(f"training: this machine has no CUDA GPU for the recipe's bf16/fp16 and "
                                     f"DeepSpeed settings; on the CPU add {CPU_FLAGS}") from None
            raise InputError(f"training options: {message}") from None


def main(argv: list[str] | None = None) -> int:
    def run() -> int:
        model_args, data_args, training_args = RecipeParser().parse(argv)
        logging.basicConfig(level=logging.INFO if training_args.local_process_index == 0 else logging.WARNING,
                            format="%(asctime)s %(name)s: %(message)s")
        train(model_args, data_args, training_args)
        return 0

    return run_main(run)  # bad inputs (a recipe's unknown key too): one line, not a traceback


if __name__ == "__main__":
    sys.exit(main())
