"""Train a tiny VideoChat-Online on the synthetic world from scratch, and evaluate it (docs/synthetic.md).

    python -m videochat_online.synthetic.recipe --config shell/synthetic/tiny.yaml --output-dir runs/synthetic

Steps `data/`, `init/`, `stage1/`, `stage2/`, `eval/{stage}_{protocol}/`, then `results.md`; each is skipped
when its output is there, so an interrupted run continues. The trainer and the evaluation read their own
recipe files; this file adds the paths and writes the resolved recipe and each command to OUTPUT_DIR.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from ..errors import InputError
from ..eval.ovbench import ANSWER_SUFFIX, SYNTHETIC_SUBSET, SYSTEM_MESSAGE, format_options
from ..options import Parser, run_main
from .build import build
from .questions import COLOUR_NAMES, DURATIONS, FAMILIES, YES_NO
from .world import PLACES, SHAPES

STAGES = ("stage1", "stage2")
RECIPE_KEYS = ("data", "model", "stage1", "stage2", "eval", "protocols")
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


PROGRESS = re.compile(r"(\d+)%\|[^|]*\|\s*(\d+)/(\d+)")  # a tqdm bar: "45%|####  | 450/1000 [...]"


def run(command: list[str], log: Path, name: str) -> None:
    """Run a step with its output in `log`; its progress (the trainer's or the evaluation's bar) is shown as it
    goes: redrawn in place on a terminal, else one line every 10%."""
    with open(log.parent / "commands.sh", "a") as f:
        f.write(shlex.join(command) + "\n")
    print("+", shlex.join(command), flush=True)
    tty, shown = sys.stdout.isatty(), -10
    with open(log, "a") as out:
        step = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        piece = ""
        for char in iter(lambda: step.stdout.read(1), ""):
            out.write(char)
            if char not in "\r\n":
                piece += char
                continue
            match = PROGRESS.search(piece)
            piece = ""
            if match is None:
                continue
            percent, done, total = map(int, match.groups())
            if tty:
                print(f"\r  {name}: {percent}% ({done}/{total})", end="", flush=True)
            elif percent >= shown + 10 or (done == total and shown < 100):
                shown = percent - percent % 10
                print(f"  {name}: {percent}% ({done}/{total})", flush=True)
        step.wait()
    if tty:
        print(flush=True)
    if step.returncode != 0:
        raise SystemExit(f"error: step failed (exit {step.returncode}); see {log}")


def read_recipe(path: str | Path) -> dict:
    """The recipe file, its named files made absolute (relative to it); a missing or unknown key is one line."""
    import yaml

    file = Path(path)
    try:
        recipe = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"--config {file}: cannot read it as YAML ({' '.join(str(err).split())})") from None
    if not isinstance(recipe, dict) or set(recipe) != set(RECIPE_KEYS):
        keys = sorted(set(recipe) ^ set(RECIPE_KEYS)) if isinstance(recipe, dict) else ["(not a mapping)"]
        raise InputError(f"{file}: unknown or missing key {keys[0]!r}; a recipe has {', '.join(RECIPE_KEYS)}")
    for key in ("stage1", "stage2", "eval"):
        recipe[key] = str((file.parent / recipe[key]).resolve())
    return recipe


def train_command(recipe: str, start: Path, metas: list[Path], out: Path) -> list[str]:
    return [sys.executable, "-m", "videochat_online.train.sft", "--config", recipe, "--model_name_or_path", str(start),
            "--output_dir", str(out), "--meta_path", *map(str, metas)]


def evaluations(protocols: list | dict) -> dict[str, list[str]]:
    """A recipe's `protocols`: a list of protocol names (each run as `--protocol NAME`), or a mapping from a row's
    name to its `videochat-online eval` options (`recent: [--protocol, stream, --memory, recent]`)."""
    if isinstance(protocols, dict):
        return {name: [str(o) for o in options] for name, options in protocols.items()}
    return {name: ["--protocol", name] for name in protocols}


def eval_command(recipe: str, model: Path, data: Path, options: list[str], out: Path) -> list[str]:
    return [sys.executable, "-m", "videochat_online.eval", "--config", recipe, "--model", str(model),
            "--anno-dir", str(data / "ovbench"), "--benchmark", SYNTHETIC_SUBSET,
            "--data-root", f"{SYNTHETIC_SUBSET}={data / 'videos/test'}", *options, "--output-dir", str(out)]


def token_budgets(recipe: str, model: Path, protocols: list | dict) -> dict[str, int]:
    """Visual tokens each protocol may show at most, from the evaluation's own options and the model's memory."""
    from ..backbones import load_engine
    from ..eval.options import add_eval_args, check_eval_args
    from ..eval.protocols import protocol_of

    parser = Parser(prog="videochat-online eval")
    add_eval_args(parser)
    engine = load_engine(str(model), device="cpu")
    budgets = {}
    for name, options in evaluations(protocols).items():
        request = check_eval_args(parser.parse_args(["--config", recipe, "--model", str(model), "--anno-dir", "-",
                                                     "--output-dir", str(model / "unused"), *options]), files=False)
        protocol = protocol_of(request.protocol_config(engine.config))
        budgets[name] = engine.new_memory(protocol.memory).max_tokens
    return budgets


def results_table(out: Path, recipe: dict) -> dict:
    """Accuracy per family for every (stage, protocol) evaluated, beside chance; written as JSON and markdown."""
    budgets = token_budgets(recipe["eval"], out / "stage2", recipe["protocols"])
    rows = {}
    for stage in STAGES:
        for protocol in recipe["protocols"]:
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
    parser = Parser(prog="python -m videochat_online.synthetic.recipe", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="the recipe (shell/synthetic/tiny.yaml)")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--stages", default=",".join(STAGES), help="which stages to evaluate (default both)")
    args = parser.parse_args(argv)
    return run_main(lambda: run_recipe(read_recipe(args.config), Path(args.output_dir), args.stages.split(",")))


def run_recipe(recipe: dict, out: Path, stages: list[str]) -> int:
    out.mkdir(parents=True, exist_ok=True)
    import yaml

    resolved = {**recipe, **{k: yaml.safe_load(Path(recipe[k]).read_text()) for k in ("stage1", "stage2", "eval")}}
    (out / "config.json").write_text(json.dumps(resolved, indent=2))
    data = out / "data"
    if not (data / "ovbench" / f"{SYNTHETIC_SUBSET}.json").is_file():
        print(f"writing the synthetic world to {data}", flush=True)
        build(data, **recipe["data"])
    init = out / "init"
    if not (init / "config.json").is_file():
        m = recipe["model"]
        if m.get("backbone", "internvl") == "internvl":
            from ..tools.make_tiny import make_tiny

            make_tiny(init, llm=m["llm"], seed=m.get("seed", 0), extra_corpus=corpus(), perturb=False,
                      llm_sizes=m["llm_sizes"], vision_sizes=m["vision_sizes"],
                      max_dynamic_patch=m["max_dynamic_patch"], system_message=SYSTEM_MESSAGE)
        else:  # a Qwen-VL family at toy sizes (backbones/tiny.py), its frames at `frame_size`
            from ..backbones.tiny import make_tiny_qwen

            make_tiny_qwen(init, m["backbone"], seed=m.get("seed", 0), extra_corpus=corpus(),
                           text_sizes=m["llm_sizes"], vision_sizes=m["vision_sizes"], frame_size=m["frame_size"])
    train = data / "train"
    starts = {"stage1": (init, [train / "stage1.json"]), "stage2": (out / "stage1", [train / "stage2.json"])}
    for stage in STAGES:
        if not (out / stage / "trainer_state.json").is_file():
            start, metas = starts[stage]
            run(train_command(recipe[stage], start, metas, out / stage), out / f"{stage}.log", f"{stage} training")
    for stage in stages:
        for protocol, options in evaluations(recipe["protocols"]).items():
            target = out / "eval" / f"{stage}_{protocol}"
            if not (target / "results.json").is_file():
                run(eval_command(recipe["eval"], out / stage, data, options, target), out / "eval.log",
                    f"{stage} {protocol} evaluation")
    results_table(out, recipe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
