"""Recipes as files: every config file under shell/ loads with the parser that reads it, and an unknown key is
one line naming it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from videochat_online.eval.runner import main as eval_main
from videochat_online.synthetic.recipe import main as recipe_main
from videochat_online.synthetic.recipe import evaluations, read_recipe
from videochat_online.train.sft import RecipeParser

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.relative_to(REPO) for p in (REPO / "shell").rglob("*") if p.suffix in (".yaml", ".json"))


def eval_request(config: Path):
    from videochat_online.eval.options import add_eval_args, check_eval_args
    from videochat_online.options import Parser

    parser = Parser(prog="videochat-online eval")
    add_eval_args(parser)
    anno = config.parents[2] / "lmms-eval-ovbench" / "tasks" / "ovbench" / "questions"  # the synthetic questions
    return check_eval_args(parser.parse_args(["--config", str(config), "--model", "m", "--benchmark", "synth",
                                              "--anno-dir", str(anno),
                                              "--data-root", f"synth={anno}", "--output-dir", "o"]))


@pytest.mark.parametrize("name", CONFIGS, ids=str)
def test_every_config_under_shell_loads(name, monkeypatch):
    monkeypatch.chdir(REPO)  # the recipes' paths are relative to the repository root
    file = REPO / name
    if file.suffix == ".json":  # DeepSpeed's ZeRO configs
        assert "zero_optimization" in json.loads(file.read_text())
    elif name.parent.name == "sft" or file.stem.startswith("stage"):  # trainer recipes
        extra = ["--use_cpu", "True"] if name.parent.name == "sft" else ["--meta_path", "m.json"]  # bf16 needs a GPU
        model, data, training = RecipeParser().parse(["--config", str(file), "--model_name_or_path", "m",
                                                      "--output_dir", "o", *extra])
        assert training.learning_rate > 0 and data.fps == 1
        if name.parent.name == "sft":
            assert all(Path(m).is_file() for m in data.meta_path) and Path(training.deepspeed).is_file()
    elif file.stem.startswith("eval"):  # the InternVL model's budgets, and the Qwen-VL one's in patches of 2 frames
        request = eval_request(file)
        memory = request.protocol_config().memory
        assert request.preset == "project" and request.fps == 1 and request.allow_failures
        sizes = (3, 3, 4) if file.stem == "eval" else (2, 2, 4)
        assert (memory.capacities, memory.window, memory.uniform_frames, memory.recent_frames) == ((2, 2, 12), *sizes)
    else:  # the synthetic recipes, and the files they name
        recipe = read_recipe(file)
        rows = evaluations(recipe["protocols"])
        assert rows["stream"] == ["--protocol", "stream"] and rows["window"] == ["--protocol", "window"]
        assert file.stem == "tiny" or rows["recent"] == ["--protocol", "stream", "--memory", "recent"]
        assert all(Path(recipe[k]).is_file() for k in ("stage1", "stage2", "eval"))


def test_a_recipes_unknown_key_is_one_line(tmp_path, capsys):
    typo = tmp_path / "typo.yaml"
    typo.write_text("preset: project\ncapacites: 2,2,12\n")
    with pytest.raises(SystemExit) as stop:
        eval_main(["--config", str(typo), "--model", "m", "--anno-dir", "a", "--output-dir", "o"])
    assert stop.value.code == 2
    assert capsys.readouterr().err == (f"error: python -m videochat_online.eval: {typo}: unknown key 'capacites': "
                                       "not an option of python -m videochat_online.eval\n")

    typo.write_text("learning_rate: 1.0e-4\nlerning_rate: 2\n")
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run([sys.executable, "-m", "videochat_online.train.sft", "--config", str(typo),
                           "--model_name_or_path", "m", "--output_dir", str(tmp_path / "o"), "--meta_path", "x"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2 and done.stderr.splitlines()[-1].startswith(f"error: {typo}: unknown key 'lerning_rate'")

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text((REPO / "shell/synthetic/tiny.yaml").read_text() + "protocol: [stream]\n")
    assert recipe_main(["--config", str(recipe), "--output-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {recipe}: unknown or missing key 'protocol'")
    assert not (tmp_path / "run").exists()  # nothing started


def test_a_steps_progress_bar_is_shown_as_it_goes_and_its_output_kept(tmp_path, capsys):
    from videochat_online.synthetic.recipe import run

    bar = ("import sys, time\nfrom tqdm import tqdm\nprint('loading')\n"
           "for _ in tqdm(range(40), file=sys.stderr, mininterval=0):\n    time.sleep(0.005)\n")
    run([sys.executable, "-c", bar], tmp_path / "stage2.log", "stage2 training")
    shown = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  stage2 training")]
    # not a terminal: one line every 10%, the last at 100%
    assert shown[0] == "  stage2 training: 0% (0/40)" and shown[-1] == "  stage2 training: 100% (40/40)"
    assert len(shown) == 11
    log = (tmp_path / "stage2.log").read_text()
    assert log.startswith("loading\n") and "40/40" in log
    with pytest.raises(SystemExit, match="step failed \\(exit 3\\); see .*stage2.log"):
        run([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "stage2.log", "stage2 training")


def test_the_synthetic_recipe_reads_its_token_budgets_from_the_eval_recipe():
    from videochat_online.synthetic.recipe import token_budgets

    budgets = token_budgets(str(REPO / "shell/synthetic/eval.yaml"), REPO / "models/videochat-online-synthetic-tiny",
                            {"stream": ["--protocol", "stream"], "window": ["--protocol", "window"],
                             "uniform": ["--protocol", "uniform"], "recent": ["--protocol", "stream", "--memory", "recent"]})
    assert budgets == {"stream": 208, "window": 192, "uniform": 192, "recent": 256}  # the pyramid; 3 and 4 frames of 8x8
