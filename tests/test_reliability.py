"""Bad input, one case a row: the input, the exit status, and the first line the command prints on stderr (or what
works instead). Huge and edge values, images too big to decode, resume folders made from other questions or videos,
hand-edited files, and paths that only look like hub ids.
"""

import json
import logging
import shutil
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from videochat_online.cli import main

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "assets" / "samples" / "synth_test_0000.mp4"
SYNTH_QUESTIONS = REPO / "lmms-eval-ovbench" / "tasks" / "ovbench" / "questions" / "synth.json"


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that claims `width` x `height` pixels (signature, IHDR, an empty IDAT, IEND: the format's own layout),
    a few dozen bytes that a decoder would expand to the full size."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_dir):
    """What the rows use: a tiny model, images over the limits, and a one-video slice of the synthetic questions."""
    root = tmp_path_factory.mktemp("reliability")
    bomb = png_header(root / "bomb.png", 20000, 10000)  # 200 million pixels: over PIL's own bomb limit
    big = png_header(root / "big.png", 8000, 8000)  # 64 million: under PIL's, over the project's 40 million
    frames = root / "frames"
    frames.mkdir()
    shutil.copy(bomb, frames / "00001.png")
    anno = root / "anno"
    anno.mkdir()
    questions = [q for q in json.loads(SYNTH_QUESTIONS.read_text()) if q["video"] == SAMPLE.name]
    (anno / "synth.json").write_text(json.dumps(questions))
    other = root / "other_anno"  # the same ids, other candidates
    other.mkdir()
    (other / "synth.json").write_text(json.dumps([{**q, "candidates": q["candidates"][::-1]} for q in questions]))
    videos = root / "videos"
    videos.mkdir()
    shutil.copy(SAMPLE, videos / SAMPLE.name)
    (root / "runs").mkdir()
    return {"root": root, "tiny": str(tiny_dir()), "bomb": bomb, "big": big, "frames": frames, "anno": anno,
            "other": other, "videos": videos, "samples": SAMPLE.parent}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run(capsys, caplog, monkeypatch):
    """The command in this process (`videochat-online ARGS`): its exit status and what it printed."""
    caplog.set_level(logging.INFO)

    def call(args, cwd=None, env=None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        caplog.clear()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err + caplog.text)

    return call


def first_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    return lines[0] if lines else result.stderr[-2000:]


def synth_eval(w, out, *extra, anno=None, videos=None):
    return ["eval", "--model", w["tiny"], "--benchmark", "synth", "--anno-dir", str(anno or w["anno"]),
            "--data-root", f"synth={videos or w['samples']}", "--preset", "project", "--fps", "1",
            "--max-new-tokens", "4", "--output-dir", str(out), *extra]


# (row id, the command's arguments from the fixture, exit status, the first error line (a part of it))
ROWS = [
    ("stream --fps 1e308", lambda w: ["stream", str(SAMPLE), "--model", w["tiny"], "--ask", "1:Q", "--fps", "1e308"],
     2, "error: --fps 1e+308: must be at most 240"),
    ("stream --fps 1e6", lambda w: ["stream", str(SAMPLE), "--model", w["tiny"], "--ask", "1:Q", "--fps", "1e6"],
     2, "error: --fps 1000000.0: must be at most 240"),
    ("stream --ask beyond a year", lambda w: ["stream", str(SAMPLE), "--model", w["tiny"], "--ask", "1e12:Q"],
     2, "error: --ask '1e12:Q': the question time must be a finite number of seconds >= 0 (a year at most)"),
    ("stream a still image", lambda w: ["stream", str(w["big"]), "--model", w["tiny"], "--ask", "1:Q"],
     2, "a still image, not a video"),
    ("stream a frame folder holding a bomb", lambda w: ["stream", str(w["frames"]), "--folder-fps", "1", "--model",
                                                        w["tiny"], "--ask", "1:Q"],
     2, "00001.png: refused as a decompression bomb"),
    ("chat --image a bomb", lambda w: ["chat", "--model", w["tiny"], "--image", str(w["bomb"]), "hi"],
     2, "bomb.png: refused as a decompression bomb"),
    ("chat --image over the pixel limit", lambda w: ["chat", "--model", w["tiny"], "--image", str(w["big"]), "hi"],
     2, "big.png: 8000x8000 pixels is over the limit of 40,000,000 pixels for an image"),
    ("eval --window-seconds 1e308", lambda w: synth_eval(w, w["root"] / "o1", "--protocol", "window",
                                                         "--window-seconds", "1e308"),
     2, "error: --window-seconds 1e+308: must be at most 86400"),
    ("eval --max-new-tokens 1e9 static", lambda w: synth_eval(w, w["root"] / "o2", "--max-new-tokens", "1000000000",
                                                              "--kv-cache", "static"),
     2, "error: --max-new-tokens 1000000000: must be at most 16384"),
    ("eval --fps 0.5 published", lambda w: synth_eval(w, w["root"] / "o3", "--preset", "published", "--fps", "0.5"),
     2, "error: --fps 0.5: the published preset steps through a frame folder by int(native fps) // int(fps)"),
    ("eval --output-dir /dev/null/x", lambda w: synth_eval(w, "/dev/null/x"),
     2, "error: --output-dir /dev/null/x: cannot create it (Not a directory)"),
    ("eval a missing local model", lambda w: [*synth_eval(w, w["root"] / "o4")[:1], "--model", "runs/stage2",
                                              *synth_eval(w, w["root"] / "o4")[3:]],
     2, "error: runs/stage2: no such checkpoint directory (runs/ is a local folder, so this is not read as a hub id)"),
    ("convert into /dev/null/x", lambda w: ["convert", w["tiny"], "/dev/null/x"],
     2, "error: /dev/null/x: cannot create it (/dev/null is not a directory)"),
    ("convert under a file", lambda w: ["convert", w["tiny"], str(w["big"] / "sub")],
     2, "big.png is not a directory)"),
    ("eval --answer-by likelihood on StreamingBench",
     lambda w: ["eval", "--model", w["tiny"], "--benchmark", "streamingbench", "--anno-dir", str(w["anno"]),
                "--output-dir", str(w["root"] / "o5"), "--answer-by", "likelihood"],
     2, "error: --answer-by likelihood: StreamingBench's prompts are its own"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_a_bad_input_is_one_line_and_its_exit_status(world, row, run):
    _, args, code, line = row
    result = run(args(world), cwd=world["root"])
    assert result.returncode == code, result.stderr[-3000:]
    assert line in first_error(result)
    assert "Traceback" not in result.stderr


DEMO_ROWS = [
    (["--port", "-1"], "error: --port -1: must be an integer >= 1"),
    (["--port", "99999"], "error: --port 99999: must be at most 65535"),
    (["--fps", "inf"], "error: --fps inf: must be a finite number > 0"),
    (["--max-seconds", "inf"], "error: --max-seconds inf: must be a finite number > 0"),
    (["--max-upload-mb", "1e12"], "error: --max-upload-mb 1000000000000.0: must be at most 100000"),
]


@pytest.mark.parametrize("args, line", DEMO_ROWS, ids=[" ".join(a) for a, _ in DEMO_ROWS])
def test_the_demos_numbers_have_ranges(args, line, capsys):
    sys.path.insert(0, str(REPO))
    import gradio_demo

    assert gradio_demo.main(["--model", "/nonexistent/model", *args]) == 2
    assert capsys.readouterr().err.splitlines() == [line]


def test_a_rate_above_the_videos_own_takes_each_frame_once(world, run):
    result = run(["stream", str(SAMPLE), "--model", world["tiny"], "--fps", "200", "--ask", "3:Q", "--json",
                  "--show-memory", "--max-new-tokens", "2"])
    assert result.returncode == 0, result.stderr
    assert "note: --fps 200 is above the 2 fps of" in result.stderr
    held = json.loads(result.stdout.splitlines()[0])["memory"]
    assert [f["time"] for f in held] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]  # the video's 2 fps, no frame twice


def test_resume_refuses_other_questions_or_other_videos_and_reads_what_it_can(world, run):
    out = world["root"] / "resume"
    assert run(synth_eval(world, out)).returncode == 0
    settings = json.loads((out / "run_settings.json").read_text())
    assert len(settings["questions"]) == 16 and settings["data_roots"] == {"synth": str(world["samples"].resolve())}
    other_questions = run(synth_eval(world, out, anno=world["other"]))
    assert other_questions.returncode == 2 and first_error(other_questions).startswith(
        f"error: {out}: holds predictions made with questions=")
    other_videos = run(synth_eval(world, out, videos=world["videos"]))
    assert other_videos.returncode == 2 and "data_roots=" in first_error(other_videos)
    # a hand-edited line without its fields: skipped, counted, its question answered again
    rank0 = out / "predictions.rank0.jsonl"
    lines = rank0.read_text().splitlines()
    cut = json.loads(lines[0])
    del cut["answer_type"]
    rank0.write_text("\n".join([json.dumps(cut), *lines[1:]]) + "\n")
    again = run(synth_eval(world, out))
    assert again.returncode == 0 and "skipped 1 prediction lines that cannot be used" in again.stderr
    assert "1 questions (" not in again.stderr and "(4 done before)" in again.stderr
    # settings that are not an object of settings
    (out / "run_settings.json").write_text("[1, 2]")
    broken = run(synth_eval(world, out))
    assert broken.returncode == 2 and first_error(broken) == (
        f"error: {out / 'run_settings.json'}: not a JSON object of settings; delete it only if every prediction "
        "beside it was made with this run's settings")


def test_a_run_that_fails_at_model_load_leaves_no_settings_behind(world, run):
    out = world["root"] / "typo"
    failed = run([*synth_eval(world, out)[:1], "--model", str(world["root"] / "no-such-model"),
                  *synth_eval(world, out)[3:]])
    assert failed.returncode == 2 and "no such checkpoint directory" in first_error(failed)
    assert not (out / "run_settings.json").exists()
    assert run(synth_eval(world, out)).returncode == 0  # the corrected command is not refused


def test_the_debug_variable_shows_the_traceback_too(world, run):
    args = ["chat", "--model", world["tiny"], "--image", str(world["bomb"]), "hi"]
    quiet, loud = run(args), run(args, env={"VIDEOCHAT_DEBUG": "1"})
    assert "Traceback" not in quiet.stderr and quiet.stderr.count("\n") == 1
    assert "Traceback (most recent call last)" in loud.stderr and loud.stderr.splitlines()[-1] == \
        quiet.stderr.splitlines()[-1]


# Annotation files: every field of its type, every time one a video can have, every video inside its root
OVO_ROW = {"id": 3, "task": "EPM", "video": "a.mp4", "realtime": 12.5, "question": "What did I hold?",
           "options": ["a cup", "a pen"], "gt": 0}  # the published schema's fields
SB_ROW = {"video_path": "./videos/a.mp4", "questions": [{"task_type": "Counting", "question": "How many?",
                                                         "time_stamp": "00:00:06", "answer": "B",
                                                         "options": ["A. 1.", "B. 2.", "C. 3.", "D. 4."]}]}


def sb_question(**change):
    return [{**SB_ROW, "questions": [{**SB_ROW["questions"][0], **change}]}]


ANNOTATION_ROWS = [  # (row id, benchmark, file name, its content, the error line after "error: {file}: ")
    ("OVO realtime NaN", "ovo-bench", [{**OVO_ROW, "realtime": float("nan")}],
     "row 0 (EPM): 'realtime' nan is not a time in seconds (0 to 86400)"),
    ("OVO realtime Infinity", "ovo-bench", [{**OVO_ROW, "realtime": float("inf")}],
     "row 0 (EPM): 'realtime' inf is not a time in seconds (0 to 86400)"),
    ("OVO realtime 1e308", "ovo-bench", [{**OVO_ROW, "realtime": 1e308}],
     "row 0 (EPM): 'realtime' 1e+308 is not a time in seconds (0 to 86400)"),
    ("OVO realtime 1e9", "ovo-bench", [{**OVO_ROW, "realtime": 1e9}],
     "row 0 (EPM): 'realtime' 1000000000.0 is not a time in seconds (0 to 86400)"),
    ("OVO realtime true", "ovo-bench", [{**OVO_ROW, "realtime": True}],
     "row 0 (EPM): 'realtime' True is not a time in seconds (0 to 86400)"),
    ("OVO probe realtime NaN", "ovo-bench", [{"id": 1, "task": "CRR", "video": "a.mp4", "question": "Q?",
                                              "test_info": [{"realtime": float("nan"), "type": 1}]}],
     "row 0 (CRR): probe 0: 'realtime' nan is not a time in seconds (0 to 86400)"),
    ("OVO gt true", "ovo-bench", [{**OVO_ROW, "gt": True}], "row 0 (EPM): 'gt' must be an integer, got True"),
    ("OVO id abc", "ovo-bench", [{**OVO_ROW, "id": "abc"}], "row 0 (EPM): 'id' must be an integer, got 'abc'"),
    ("OVO id 0.5", "ovo-bench", [{**OVO_ROW, "id": 0.5}], "row 0 (EPM): 'id' must be an integer, got 0.5"),
    ("OVO options of numbers", "ovo-bench", [{**OVO_ROW, "options": [1, 2]}],
     "row 0 (EPM): needs 2 to 5 options, each a string, and gt an index into them"),
    ("OVO video 123", "ovo-bench", [{**OVO_ROW, "video": 123}], "row 0 (EPM): 'video' must be a string, got 123"),
    ("OVO duplicate ids", "ovo-bench", [OVO_ROW, {**OVO_ROW, "video": "b.mp4"}],
     "row 1 (EPM): id 3 is also row 0's"),
    ("SB time 99:99:99", "streamingbench", sb_question(time_stamp="99:99:99"),
     "record 0, question 0: 'time_stamp' 362439.0 is not a time in seconds (0 to 86400)"),
    ("SB time 1:2:3:4:5", "streamingbench", sb_question(time_stamp="1:2:3:4:5"),
     "record 0, question 0: 'time_stamp' '1:2:3:4:5' is not [HH:]MM:SS"),
    ("SB options of numbers", "streamingbench", sb_question(options=[1, 2, 3, 4]),
     "record 0, question 0: needs 4 options, each a string, and an answer letter A-D"),
    ("SB video_path 7", "streamingbench", [{**SB_ROW, "video_path": 7}],
     "record 0: 'video_path' must be a string, got 7"),
]


@pytest.mark.parametrize("row", ANNOTATION_ROWS, ids=[r[0] for r in ANNOTATION_ROWS])
def test_a_bad_annotation_field_is_one_line_naming_file_row_and_field(tmp_path, row, run):
    _, benchmark, content, line = row
    name = "ovo_bench_new.json" if benchmark == "ovo-bench" else "questions_real.json"
    (tmp_path / name).write_text(json.dumps(content))
    (tmp_path / "videos").mkdir()
    extra = ["--subsets", "real"] if benchmark == "streamingbench" else []
    result = run(["eval", "--benchmark", benchmark, "--model", "x/y", "--anno-dir", str(tmp_path), "--data-root",
                  f"videos={tmp_path / 'videos'}", "--output-dir", str(tmp_path / "out"), *extra])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert first_error(result) == f"error: {tmp_path / name}: {line}"


def test_a_tiny_watch_period_polls_once_per_frame_at_most(world, run, tmp_path):
    from videochat_online.tools.demo_media import write_video

    video = write_video(tmp_path / "six.mp4", seconds=6, fps=2, width=64, height=48)
    result = run(["stream", str(video), "--model", world["tiny"], "--fps", "2", "--watch", "Is the ball here?",
                  "--watch-every", "1e-9", "--max-new-tokens", "2", "--json"])
    assert result.returncode == 0, result.stderr
    assert "note: --watch-every 1e-09 is shorter than the 0.5 s between two frames" in result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["summary"] and summary["polls"] <= 12  # 6 s at 2 frames a second


def test_a_question_that_does_not_fit_the_context_is_refused_in_one_line(world, run):
    """From the command line and the Python API alike; the limit on characters comes first on the command line."""
    from videochat_online.chat import ChatEngine
    from videochat_online.errors import InputError
    from videochat_online.memory import MemorySettings
    from videochat_online.streaming import StreamingSession

    long = run(["stream", str(SAMPLE), "--model", world["tiny"], "--ask", "1:" + "why " * 1000])
    assert long.returncode == 2 and first_error(long) == \
        "error: --ask 1:...: 3,999 characters is over the limit of 2,000 (--max-question-chars)"
    engine = ChatEngine.from_pretrained(world["tiny"], device="cpu")
    session = StreamingSession(engine, MemorySettings().build(engine.config.grid_size))
    with pytest.raises(InputError, match=r"^the question does not fit the model's context: its prompt is \d+ tokens "
                                         r"and the reply may take 4, over the 8192 positions the model has"):
        session.ask("why " * 9000, max_new_tokens=4)
    too_long = run(["stream", str(SAMPLE), "--model", world["tiny"], "--max-question-chars", "100000",
                    "--ask", "1:" + "why " * 9000, "--max-new-tokens", "4"])
    assert too_long.returncode == 2 and "Traceback" not in too_long.stderr
    assert first_error(too_long).startswith("error: the question does not fit the model's context")


@pytest.mark.parametrize("kwargs, line", [
    ({"device": "cuda"}, "--device cuda: CUDA is not available on this machine; use cpu"),
    ({"device": "tpu"}, "--device tpu: not a device; use cpu, cuda or cuda:N"),
    ({"dtype": "fp8"}, "--dtype fp8: use one of bf16, bfloat16, fp16, float16, fp32, float32 or auto"),
    ({"attn_implementation": "fast"}, "--attn fast: use one of sdpa, flash_attention_2, eager"),
])
def test_the_python_api_raises_the_commands_one_line_errors(world, kwargs, line):
    from videochat_online.chat import ChatEngine
    from videochat_online.errors import InputError

    with pytest.raises(InputError) as err:
        ChatEngine.from_pretrained(world["tiny"], **kwargs)
    assert str(err.value) == line
