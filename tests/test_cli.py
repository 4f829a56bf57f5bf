"""The command line: tiny-checkpoint maker and `videochat-online chat`, in-process and as installed."""

import shutil
import subprocess
import sys

import numpy as np
from PIL import Image

from videochat_online.cli import main
from videochat_online.model.checkpoint import read_checkpoint
from videochat_online.tools import make_tiny


def test_make_tiny_cli_writes_both_layouts(tmp_path, capsys):
    make_tiny.main([str(tmp_path / "o"), "--layout", "original", "--llm", "qwen2"])
    make_tiny.main([str(tmp_path / "n")])
    assert "tiny qwen2 checkpoint (original layout)" in capsys.readouterr().out
    assert read_checkpoint(tmp_path / "o").layout == "original"
    assert read_checkpoint(tmp_path / "n").config.template == "phi3-chat"


def test_chat_with_image_prints_answer(tiny_dir, tmp_path, capsys):
    image = tmp_path / "frame.png"
    Image.fromarray((np.random.RandomState(0).rand(100, 100, 3) * 255).astype("uint8")).save(image)
    args = ["chat", "--model", str(tiny_dir("original", "phi3")), "--image", str(image), "--max-new-tokens", "4",
            "What is shown?"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.strip()  # the tiny model answers something
    assert main(args) == 0 and capsys.readouterr().out == first  # greedy: deterministic


def test_chat_interactive_keeps_history(tiny_dir, monkeypatch, capsys):
    turns = iter(["first question", "second question"])

    def fake_input(prompt):
        try:
            return next(turns)
        except StopIteration:
            raise EOFError

    monkeypatch.setattr("builtins.input", fake_input)
    assert main(["chat", "--model", str(tiny_dir("native", "llama")), "--max-new-tokens", "3"]) == 0
    assert capsys.readouterr().out.count("model> ") == 2


def test_missing_image_is_one_line_error(tiny_dir, tmp_path, capsys):
    assert main(["chat", "--model", str(tiny_dir()), "--image", str(tmp_path / "x.jpg"), "q"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'x.jpg'}: no such image file\n"


def test_convert_original_to_native(tiny_dir, tmp_path):
    assert main(["convert", str(tiny_dir("original", "phi3", shards=2)), str(tmp_path / "conv")]) == 0
    assert read_checkpoint(tmp_path / "conv").layout == "native"


def test_installed_console_script(tiny_dir):
    exe = shutil.which("videochat-online") or str(__import__("pathlib").Path(sys.executable).parent / "videochat-online")
    out = subprocess.run([exe, "chat", "--model", str(tiny_dir()), "--max-new-tokens", "2", "hello"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
