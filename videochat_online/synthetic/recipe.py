"""Train a tiny VideoChat-Online on the synthetic world from scratch, and evaluate it.

    python -m videochat_online.synthetic.recipe --config shell/synthetic/tiny.json --output-dir runs/synthetic

Steps, each skipped when its output is already there (so an interrupted run continues):
1. `data/`: the benchmark and training sets (`build.py`);
2. `init/`: a randomly initialised tiny model whose tokenizer has learnt the world's words;
3. `stage1/`: offline SFT (one-frame and whole-clip questions), `python -m videochat_online.train.sft`;
4. `stage2/`: online + offline SFT from stage 1 (the interleaved online dialogues added);
5. `eval/{stage}_{protocol}/`: `python -m videochat_online.eval` on the test split, the `project`
   preset at 1 fps, the pyramid memory against a window and uniform frames at an equal token budget;
6. `results.md` / `results.json`: accuracy per question family beside chance.
The resolved config and every command run are written to OUTPUT_DIR (`config.json`, `commands.sh`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from ..eval.ovbench import ANSWER_SUFFIX, SYNTHETIC_SUBSET, SYSTEM_MESSAGE, format_options
from ..settings import MemorySettings, parse_int_list
from .build import build
from .questions import COLOUR_NAMES, DURATIONS, FAMILIES, YES_NO
from .world import PLACES, SHAPES

STAGES = ("stage1", "stage2")
TRAINING_DEFAULTS = {"num_train_epochs": 1, "learning_rate": 1e-3, "per_device_train_batch_size": 2,
                     "freeze_vision": False, "drop_path_rate": 0.0, "warmup_steps": 0.05, "lr_scheduler_type": "cosine",
                     "weight_decay": 0.0, "logging_steps": 10, "save_strategy": "no", "report_to": "none",
                     "dataloader_num_workers": 0, "max_num_frames": 64, "fps": 1, "seed": 0}
CHANCE = {"PastMemory": 1 / len(COLOUR_NAMES), "SpatialPerception": 1 / len(PLACES),
          "TemporalPerception": 1 / len(DURATIONS), "FuturePrediction": 1 / len(PLACES),
          "Hallucination": 1 / len(YES_NO)}


def corpus() -> list[str]:
    """The text the model reads and writes, for its tokenizer."""
    lines = [SYSTEM_MESSAGE]
    for shape in SHAPES:
        for answers in (COLOUR_NAMES, PLACES, DURATIONS, YES_NO):
            lines.append(f"Question at 12.0s: Is the {shape} still in view?\n" + format_options(answers) + ANSWER_SUFFIX)
            lines += [f"({'ABCD'[i]}) {a}" for i, a in enumerate(answers)]
    lines += [f"Frame{i} at {i}.0s:" for i in range(1, 65)]
    return lines * 8


def run(command: list[str], log: Path) -> None:
    with open(log.parent / "commands.sh", "a") as f:
        f.write(shlex.join(command) + "\n")
    print("+", shlex.join(command), flush=True)
    with open(log, "a") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"error: step failed (exit {done.returncode}); see {log}")


def train_command(stage: str, start: Path, metas: list[Path], out: Path, settings: dict) -> list[str]:
    args = {**TRAINING_DEFAULTS, **settings}
    command = [sys.executable, "-m", "videochat_online.train.sft", "--model_name_or_path", str(start),
               "--output_dir", str(out), "--meta_path", *map(str, metas)]
    for key, value in args.items():
        command += [f"--{key}", str(value)]
    return command


def eval_command(model: Path, data: Path, protocol: str, out: Path, settings: dict) -> list[str]:
    return [sys.executable, "-m", "videochat_online.eval", "--model", str(model), "--anno-dir", str(data / "ovbench"),
            "--subsets", SYNTHETIC_SUBSET, "--data-root", f"{SYNTHETIC_SUBSET}={data / 'videos/test'}",
            "--protocol", protocol, "--preset", settings["preset"], "--fps", str(settings["fps"]),
            "--capacities", settings["capacities"], "--window", str(settings["window"]),
            "--uniform-frames", str(settings["uniform_frames"]), "--output-dir", str(out),
            "--allow-failures"]


def token_budgets(settings: dict, grid: int) -> dict[str, int]:
    """Visual tokens each protocol may show at most (the pyramid's cap, as the memory bank computes it)."""
    pyramid = MemorySettings(capacities=parse_int_list(settings["capacities"], "capacities")).build(grid)
    return {"stream": pyramid.max_tokens, "window": settings["window"] * grid * grid,
            "uniform": settings["uniform_frames"] * grid * grid}


def results_table(out: Path, config: dict, grid: int) -> dict:
    """Accuracy per family for every (stage, protocol) evaluated, beside chance; written as JSON and markdown."""
    budgets = token_budgets(config["eval"], grid)
    rows = {}
    for stage in STAGES:
        for protocol in config["eval"]["protocols"]:
            file = out / "eval" / f"{stage}_{protocol}" / "results.json"
            if file.is_file():
                table = json.loads(file.read_text())
                rows[f"{stage} {protocol}"] = {
                    "tokens": budgets[protocol], **{t: table["answer_type"][t]["accuracy"] for t in CHANCE
                                                    if t in table["answer_type"]},
                    "all": table["overall"]["accuracy"], "macro": table["headline"]["macro"]}
    chance = {t: 100 * p for t, p in CHANCE.items()}
    chance["all"] = chance["macro"] = sum(chance.values()) / len(chance)
    columns = list(CHANCE) + ["all", "macro"]
    names = {f: FAMILIES[f][0] for f in FAMILIES}
    lines = ["| model, protocol | visual tokens | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns),
             "| chance | - | " + " | ".join(f"{chance[c]:.1f}" for c in columns) + " |"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['tokens']} | " + " | ".join(f"{row.get(c, float('nan')):.1f}" for c in columns) + " |")
    result = {"chance": chance, "rows": rows, "families": names}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m videochat_online.synthetic.recipe", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="the recipe (shell/synthetic/tiny.json)")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--stages", default=",".join(STAGES), help="which stages to evaluate (default both)")
    args = parser.parse_args(argv)
    config = json.loads(Path(args.config).read_text())
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    data = out / "data"
    if not (data / "ovbench" / f"{SYNTHETIC_SUBSET}.json").is_file():
        print(f"writing the synthetic world to {data}", flush=True)
        build(data, **config["data"])
    init = out / "init"
    if not (init / "config.json").is_file():
        from ..tools.make_tiny import make_tiny

        m = config["model"]
        make_tiny(init, llm=m["llm"], seed=m.get("seed", 0), extra_corpus=corpus(), perturb=False,
                  llm_sizes=m["llm_sizes"], vision_sizes=m["vision_sizes"], max_dynamic_patch=m["max_dynamic_patch"],
                  system_message=SYSTEM_MESSAGE)
    train = data / "train"
    starts = {"stage1": (init, [train / "stage1.json"]), "stage2": (out / "stage1", [train / "stage2.json"])}
    for stage in STAGES:
        if not (out / stage / "trainer_state.json").is_file():
            start, metas = starts[stage]
            run(train_command(stage, start, metas, out / stage, config[stage]), out / f"{stage}.log")
    from ..model.configuration import VideoChatOnlineConfig

    grid = VideoChatOnlineConfig.from_json_file(str(out / "stage2" / "config.json")).grid_size
    for stage in args.stages.split(","):
        for protocol in config["eval"]["protocols"]:
            target = out / "eval" / f"{stage}_{protocol}"
            if not (target / "results.json").is_file():
                run(eval_command(out / stage, data, protocol, target, config["eval"]), out / "eval.log")
    results_table(out, config, grid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
