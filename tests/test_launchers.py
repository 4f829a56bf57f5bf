"""Every launcher runs from a fresh clone without an activated venv: each finds the project's .venv itself (a
shell whose PATH lacks it runs each with --help or a dry run)."""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BARE = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")} | {"PATH": "/usr/bin:/bin"}


@pytest.mark.parametrize("script, env, args, expected", [
    ("gradio_demo.sh", {}, ["--help"], "usage: gradio_demo.py"),
    ("shell/synthetic/train_tiny.sh", {}, ["--help"], "usage: python -m videochat_online.synthetic.recipe"),
    ("shell/eval/online_bench_stream.sh", {"MODEL": "m", "ANNO_DIR": "a", "COIN_ROOT": "c"}, ["--help"],
     "usage: python -m videochat_online.eval"),
    ("shell/eval/online_bench_sliding_window.sh", {"MODEL": "m", "ANNO_DIR": "a", "COIN_ROOT": "c"}, ["--help"],
     "--window-seconds"),
    ("shell/sft/videochat_online_4b_stage1_ft.sh", {"MODEL": "/ckpt/m", "OUTPUT_DIR": "out", "DRY_RUN": "1"}, [],
     "-m videochat_online.train.sft"),
    ("lmms-eval-ovbench/scripts/eval_videochat_online.sh", {"DRY_RUN": "1"}, ["--limit", "2"], "-m lmms_eval"),
])
def test_launchers_find_the_venv(script, env, args, expected, tmp_path):
    done = subprocess.run(["bash", str(REPO / script), *args], capture_output=True, text=True, timeout=300,
                          env={**BARE, **env}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected in done.stdout
    if env.get("DRY_RUN"):
        assert f"{REPO}/.venv/bin/python" in done.stdout or f"{REPO}/lmms-eval-ovbench/scripts/../../.venv/bin/python" \
            in done.stdout  # the project's interpreter, not one on PATH


def test_training_without_the_gpus_it_names_is_one_line(tmp_path):
    """The 4B launcher on a machine without GPUs, and the trainer in one process with the recipe's bf16: one line
    each, naming what is missing and the flags that run on the CPU."""
    import torch

    if torch.cuda.device_count() >= 8:
        pytest.skip("this machine has the launcher's 8 GPUs")  # a GPU machine runs the launcher for real
    done = subprocess.run(["bash", str(REPO / "shell/sft/videochat_online_4b_stage1_ft.sh")], capture_output=True,
                          text=True, timeout=300, env={**BARE, "MODEL": "/ckpt/m", "OUTPUT_DIR": str(tmp_path / "o")})
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "this machine has" in done.stderr and "--use_cpu True --bf16 False" in done.stderr or \
        "set GPUS=" in done.stderr
    from videochat_online.train.sft import main

    if torch.cuda.is_available():
        return
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["--config", str(REPO / "shell/sft/videochat_online_4b_stage1.yaml"), "--model_name_or_path",
                     "/ckpt/m", "--output_dir", str(tmp_path / "o")])
    assert code == 2 and err.getvalue().splitlines() == [
        "error: training: this machine has no CUDA GPU for the recipe's bf16/fp16 and DeepSpeed settings; on the CPU "
        "add --use_cpu True --bf16 False --deepspeed ''"]
