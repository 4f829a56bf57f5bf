"""Every bad option ends the installed `videochat-online` command with exit status 2 and one stderr line
naming the option (or file), before any model is loaded.

Most cases name a model folder that does not exist: an option checked after loading would report the
missing model instead of the option. The grid-size cases need the model's grid, which is read from
its config alone.
"""

import io
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from videochat_online.cli import main

from videochat_online.tools.demo_media import write_video

EXE = str(Path(sys.executable).parent / "videochat-online")
NO_MODEL = "/nonexistent/model"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=3, fps=5, width=32, height=24)


def stream(clip, *extra, model=NO_MODEL):
    return ["stream", str(clip), "--model", model, "--ask", "1:What?", *extra]


STREAM_CASES = [
    (["--fps", "0"], "--fps 0.0: must be a finite number > 0"),
    (["--fps", "-1"], "--fps -1.0: must be a finite number > 0"),
    (["--fps", "nan"], "--fps nan: must be a finite number > 0"),
    (["--fps", "inf"], "--fps inf: must be a finite number > 0"),
    (["--capacities", "2,2"], "--capacities 2,2 and --intervals 8,4,1: give one interval per level"),
    (["--capacities=-1,2,12"], "--capacities -1,2,12: each level's capacity must be >= 0"),
    (["--capacities", "0,0,0"], "--capacities 0,0,0: at least one level must hold frames"),
    (["--capacities", "two"], "--capacities two: expected integers separated by commas"),
    (["--grid-sizes", "8,0,2"], "--grid-sizes 8,0,2: each grid size must be >= 1"),
    (["--grid-sizes", "8,16,32"], "--grid-sizes 8,16,32: grid sizes must not grow from one level to the next"),
    (["--intervals", "0,4,1"], "--intervals 0,4,1: each level's sample interval must be >= 1"),
    (["--intervals", "8,4,2"], "--intervals 8,4,2: the last level's interval must be 1"),
    (["--memory", "window", "--window", "0"], "--window 0: must be >= 1 (window: frames held)"),
    (["--memory", "uniform", "--uniform-frames", "0"], "--uniform-frames 0: must be >= 1 (uniform: frames shown)"),
    (["--max-new-tokens", "0"], "--max-new-tokens 0: must be an integer >= 1"),
    (["--batch-size", "0"], "--batch-size 0: must be an integer >= 1"),
    (["--device", "cuda"], "--device cuda: CUDA is not available on this machine"),
    (["--device", "foo"], "--device foo: not a device; use cpu, cuda or cuda:N"),
    (["--attn", "flash_attention_2"], "--attn flash_attention_2: the flash-attn package is not installed"),
    (["--ask", "nan:When?"], "--ask 'nan:When?': the question time must be a finite number of seconds >= 0"),
    (["--memory", "all"], "--memory all: use one of pyramid, window, recent, uniform, or a package.module:Class path"),
    (["--compile-vision", "fast"], "argument --compile-vision: invalid choice: 'fast'"),
    (["--kv-cache", "paged"], "argument --kv-cache: invalid choice: 'paged'"),
    (["--buffer", "0"], "--buffer 0: must be an integer >= 1"),
    (["--stall-seconds", "0"], "--stall-seconds 0.0: must be a finite number > 0"),
]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run(args):
    """`videochat-online ARGS` in this process (the installed command itself: `test_the_installed_command`)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit:  # argparse's usage errors
            code = exit.code
    return Result(code, out.getvalue(), err.getvalue())


def test_the_installed_command():
    result = subprocess.run([EXE, "chat", "--model", NO_MODEL, "--max-new-tokens", "0", "hi"], capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert_one_line(result, "--max-new-tokens 0: must be an integer >= 1")


def assert_one_line(result, message):
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert NO_MODEL not in lines[0]  # the model was never looked at


@pytest.mark.parametrize("extra, message", STREAM_CASES, ids=[" ".join(c[0]) for c in STREAM_CASES])
def test_stream_options(clip, extra, message):
    assert_one_line(run(stream(clip, *extra)), message)


@pytest.mark.parametrize("grids, message", [("7,4,2", "--grid-sizes 7,4,2: the first level keeps the model's full "
                                                       "grid, 8; e.g. 8,4,2")])
def test_grid_sizes_against_the_model(clip, tiny_dir, grids, message):
    result = run(stream(clip, "--grid-sizes", grids, model=str(tiny_dir())))
    assert result.returncode == 2 and result.stderr.splitlines() == [f"error: {message}"], result.stderr


def test_a_folder_given_as_a_video(tmp_path):
    (tmp_path / "frames").mkdir()
    result = run(stream(tmp_path / "frames"))
    assert_one_line(result, f"{tmp_path / 'frames'}: is a folder, not a video file; to read it as a folder of "
                            "frames, give its frame rate (--folder-fps)")


def test_chat_options():
    assert_one_line(run(["chat", "--model", NO_MODEL, "--max-new-tokens", "0", "hi"]),
                    "--max-new-tokens 0: must be an integer >= 1")


def eval_args(anno, out, *extra):
    return ["eval", "--model", NO_MODEL, "--anno-dir", str(anno), "--output-dir", str(out), *extra]


def test_eval_options(tmp_path):
    anno = tmp_path / "anno"
    anno.mkdir()
    (anno / "coin.json").write_text("[]")  # an empty question file
    taken = tmp_path / "taken"
    taken.write_text("a file")
    out = tmp_path / "out"
    cases = [
        (eval_args(anno, taken, "--subsets", "coin"), f"--output-dir {taken}: exists and is not a directory"),
        (eval_args(anno, out, "--subsets", "coin", "--max-videos", "0"), "--max-videos 0: must be an integer >= 1"),
        (eval_args(anno, out, "--subsets", "coin", "--fps", "nan"), "--fps nan: must be a finite number > 0"),
        (eval_args(anno, out, "--subsets", "coin", "--capacities", "2,2"), "--capacities 2,2 and --intervals 8,4,1"),
        (eval_args(anno, out, "--subsets", "coin", "--window-seconds", "0"), "--window-seconds 0.0: must be"),
        (eval_args(anno, out, "--subsets", "coin,youtube"), "--subsets coin,youtube: use one or more of"),
        (eval_args(anno, out, "--subsets", "coin", "--device", "cuda:3"), "--device cuda:3: CUDA is not available"),
        (eval_args(anno, out, "--protocol", "offline"),
         "--protocol offline: OVBench runs stream, realtime, window, uniform, recompute"),
        (eval_args(anno, out, "--protocol", "sliding"),
         "--protocol sliding: use one of stream, realtime, window, uniform, recompute, offline, or a "
         "package.module:Class"),
        (eval_args(anno, out, "--subsets", "coin", "--speed", "2"),
         "--speed: only a protocol played on the clock takes it (--protocol realtime)"),
        (eval_args(anno, out, "--subsets", "coin", "--protocol", "realtime", "--speed", "0"),
         "--speed 0.0: must be a finite number > 0"),
        (eval_args(anno, out, "--subsets", "coin", "--protocol", "realtime", "--buffer", "0"),
         "--buffer 0: must be an integer >= 1"),
        (eval_args(anno, out, "--subsets", "coin", "--compare", str(taken)),
         f"--compare {taken}: has no results.json (give a finished run's --output-dir)"),
        (eval_args(anno, out, "--benchmark", "streamingbench", "--answer-by", "likelihood"),
         "--answer-by likelihood: StreamingBench's prompts are its own; it is answered by generation only"),
        (eval_args(anno, out, "--subsets", "coin", "--data-root", "coin"), "--data-root coin: write it as NAME=DIR"),
        (eval_args(anno, out, "--subsets", "coin"), f"{anno}: no questions to evaluate in subsets coin"),
    ]
    for args, message in cases:
        assert_one_line(run(args), message)
    assert not any(out.glob("predictions*"))


def test_convert_onto_an_existing_file(tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_text("keep me")
    assert_one_line(run(["convert", NO_MODEL, str(target)]), f"{target}: exists and is not a directory")
    assert target.read_text() == "keep me"


def test_python_users_get_the_same_messages():
    from videochat_online.memory import MemorySettings
    from videochat_online.settings import SettingsError

    with pytest.raises(SettingsError, match="--capacities 0,0,0: at least one level must hold frames"):
        MemorySettings(capacities=(0, 0, 0))
    with pytest.raises(ValueError, match="--grid-sizes 8,16,32: grid sizes must not grow"):  # also a ValueError
        MemorySettings(grid_sizes=(8, 16, 32))
