"""The command line: tiny-checkpoint maker and `videochat-online chat`, in-process and as installed."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
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


def test_installed_console_script(tiny_dir, demo_mp4):
    exe = shutil.which("videochat-online") or str(__import__("pathlib").Path(sys.executable).parent / "videochat-online")
    out = subprocess.run([exe, "chat", "--model", str(tiny_dir()), "--max-new-tokens", "2", "hello"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    piped = subprocess.run([exe, "stream", str(demo_mp4), "--model", str(tiny_dir()), "--fps", "2", "--ask",
                            "3:Where is it?", "--max-new-tokens", "2"], capture_output=True, text=True, timeout=300)
    assert piped.returncode == 0 and piped.stdout.startswith("[3s] Q: Where is it?")
    assert "watching" not in piped.stderr  # no progress bar when stderr is not a terminal


def test_stream_end_to_end(tiny_dir, demo_mp4, capsys):
    args = ["stream", str(demo_mp4), "--model", str(tiny_dir("original", "phi3")), "--fps", "2",
            "--ask", "6.5:What is the ball doing?", "--ask", "2:Where is it?", "--max-new-tokens", "4"]
    assert main(args + ["--show-memory"]) == 0
    out = capsys.readouterr().out
    assert out.index("[2s] Q: Where is it?") < out.index("[6.5s] Q: What is the ball doing?")
    assert "memory: 5 frames" in out  # frames at 0, 0.5, ..., 2.0
    assert "  frame    13  t=    6.50s  level 2  4 tokens" in out

    assert main(args + ["--json", "--show-memory"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["time"] for r in records] == [2.0, 6.5]
    assert records[0]["memory"][0] == {"index": 0, "time": 0.0, "level": 0, "tokens": 64}
    assert sum(m["tokens"] for m in records[1]["memory"]) == 64 * 2 + 16 * 2 + 4 * 10  # 14 frames seen


def test_stream_with_a_static_kv_cache_gives_the_same_replies(tiny_dir, demo_mp4, capsys, monkeypatch):
    import videochat_online.streaming as streaming

    kinds = []  # the prefix caches the sessions get

    class Recorded(streaming.PrefixCache):
        def __init__(self, static=False):
            super().__init__(static)
            kinds.append(static)

    monkeypatch.setattr(streaming, "PrefixCache", Recorded)
    args = ["stream", str(demo_mp4), "--model", str(tiny_dir("original", "phi3")), "--fps", "2", "--json",
            "--ask", "2:Where is it?", "--ask", "3:Where is it?", "--ask", "6.5:What is the ball doing?",
            "--max-new-tokens", "6"]
    assert main(args) == 0
    dynamic = [json.loads(line)["answer"] for line in capsys.readouterr().out.splitlines()]
    assert main(args + ["--kv-cache", "static"]) == 0
    static = [json.loads(line)["answer"] for line in capsys.readouterr().out.splitlines()]
    assert len(dynamic) == 3 and static == dynamic
    assert kinds == [False, True]


def test_stream_frame_folder_and_window(tiny_dir, tmp_path, capsys):
    from videochat_online.tools.demo_media import write_frame_folder

    folder = write_frame_folder(tmp_path / "frames", 20)
    args = ["stream", str(folder), "--folder-fps", "5", "--model", str(tiny_dir()), "--memory", "window",
            "--window", "3", "--ask", "3:Anything?", "--json", "--show-memory", "--max-new-tokens", "2"]
    assert main(args) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[-1])  # (a library's first import may print before)
    assert [m["index"] for m in record["memory"]] == [4, 5, 6]  # sampled at 2 fps: the last 3 of 0, 0.5 .. 3 s
    assert main(args[:6] + ["--memory", "recent", "--recent-frames", "2", *args[10:]]) == 0  # the recency baseline
    record = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert [(m["index"], m["tokens"]) for m in record["memory"]] == [(5, 64), (6, 64)]  # full resolution: the tiny grid, 8x8


@pytest.mark.parametrize("ask, message", [
    ("-1:Why?", "--ask '-1:Why?': the question time must be a finite number of seconds >= 0"),
    ("soon:Why?", "--ask 'soon:Why?': write it as SECONDS:QUESTION"),
])
def test_stream_bad_question(tiny_dir, demo_mp4, capsys, ask, message):
    assert main(["stream", str(demo_mp4), "--model", str(tiny_dir()), f"--ask={ask}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


def test_stream_bad_video(tiny_dir, tmp_path, capsys):
    for path, message in [(tmp_path / "none.mp4", "no such video file or frame folder"),
                          (tmp_path, "the frame folder has no images")]:
        assert main(["stream", str(path), "--model", str(tiny_dir()), "--folder-fps", "1", "--ask", "1:x"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}: {message}") and err.count("\n") == 1
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(500))
    assert main(["stream", str(corrupt), "--model", str(tiny_dir()), "--ask", "1:x"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {corrupt}: not a readable video")


def test_stream_question_after_the_end_warns(tiny_dir, demo_mp4, capsys):
    assert main(["stream", str(demo_mp4), "--model", str(tiny_dir()), "--ask", "30:Still there?", "--json",
                 "--show-memory", "--max-new-tokens", "2"]) == 0
    captured = capsys.readouterr()
    assert "warning: the question at 30s comes after the end of" in captured.err
    assert json.loads(captured.out)["memory"][-1]["time"] == 7.5


def test_make_demo_prints_the_answers_the_readme_shows_at_the_models_own_settings():
    """`videochat-online stream` with no rate or memory options watches as the bundled model was trained (1 fps, its
    recorded pyramid), and gives the answers README.md's `make demo` table shows."""
    root = Path(__file__).resolve().parents[1]
    rows = re.findall(r"^\| (\d+) s \| ([^|]+?) \| ([^|]+?) \| [^|]+ \|$", (root / "README.md").read_text(), re.M)
    assert len(rows) == 5
    asks = [a for t, question, _ in rows for a in ("--ask", f"{t}:{question}")]
    done = subprocess.run([sys.executable, "-m", "videochat_online.cli", "stream",
                           str(root / "assets/samples/synth_test_0000.mp4"), "--model",
                           str(root / "models/videochat-online-synthetic-tiny"), "--json", "--show-memory", *asks],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["answer"] for a in answers] == [answer for _, _, answer in rows]
    held = answers[1]["memory"]  # at 11 s: frames 0..11 at 1 fps, placed by the recorded intervals 8,4,1
    assert [f["time"] for f in held] == [float(t) for t in range(12)]
    assert [f["level"] for f in held] == [0 if i % 8 == 0 else 1 if i % 4 == 0 else 2 for i in range(12)]


def test_help_texts_state_defaults_once_and_read_as_sentences():
    from videochat_online.cli import build_parser

    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices  # argparse keeps sub-parsers here
    stream = " ".join(sub["stream"].format_help().split())
    assert "docstring" not in stream and ".;" not in stream
    assert stream.count("--grid-sizes GRID_SIZES pyramid: grid side per level, never growing (default: the model's, "
                        "else its feature grid g, g/2, g/4)") == 1 and "else None" not in stream
    for flag, default in (("--watch-every", "1"), ("--watch-confirm", "3"), ("--buffer", "16"),
                          ("--stall-seconds", "10"), ("--max-new-tokens", "256")):
        assert re.search(rf"{flag} \S+ [^-]*default: {default}[;)]", stream), flag
    evaluate = " ".join(sub["eval"].format_help().split())
    assert "(default: stream). OVBench: stream, realtime, window, uniform, recompute;" in evaluate
    convert = " ".join(sub["convert"].format_help().split())
    assert "src the checkpoint to read" in convert and "out a new folder" in convert


def test_a_negative_list_is_a_value_and_offline_is_not_an_ovbench_protocol(capsys):
    from videochat_online.cli import main

    assert main(["stream", "v.mp4", "--model", "x/y", "--capacities", "-1,2,12", "--ask", "1:Q"]) == 2
    assert capsys.readouterr().err.splitlines() == ["error: --capacities -1,2,12: each level's capacity must be >= 0"]
    assert main(["eval", "--model", "x/y", "--anno-dir", ".", "--output-dir", "o", "--protocol", "offline"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --protocol offline: OVBench runs stream, realtime, window, uniform, recompute"]


def test_every_tool_module_has_a_command_line(tmp_path, capsys):
    """`python -m videochat_online.tools.X --help` prints a usage for each X; demo_media writes a video."""
    import importlib
    import pkgutil

    import videochat_online.tools as tools
    from videochat_online.data.video import open_video

    for info in pkgutil.iter_modules(tools.__path__):
        module = importlib.import_module(f"videochat_online.tools.{info.name}")
        with pytest.raises(SystemExit) as exit_:
            module.main(["--help"])
        assert exit_.value.code == 0 and "usage:" in capsys.readouterr().out, info.name
    from videochat_online.tools import demo_media

    assert demo_media.main([str(tmp_path / "v.mp4"), "--seconds", "3", "--fps", "2"]) == 0
    assert open_video(tmp_path / "v.mp4").num_frames == 6
    assert demo_media.main([str(tmp_path / "no" / "v.mp4")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"error: {tmp_path / 'no' / 'v.mp4'}: its folder does not exist"
