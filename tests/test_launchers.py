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
