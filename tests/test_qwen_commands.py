"""Every command on tiny Qwen3-VL and Qwen2.5-VL checkpoints in the transformers layout: make_tiny writes them,
transformers loads them, and stream, chat and eval run them with each memory policy's prompt and records."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from videochat_online.cli import main
from videochat_online.eval.runner import main as eval_main
from videochat_online.tools import make_tiny

BACKBONES = ["qwen3-vl", "qwen2.5-vl"]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_make_tiny_writes_a_qwen_checkpoint_plain_transformers_loads(backbone, tmp_path, capsys):
    from transformers import AutoModelForImageTextToText, AutoTokenizer, Qwen2_5_VLForConditionalGeneration
    from transformers import Qwen3VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    make_tiny.main([str(tmp_path / "m"), "--backbone", backbone])
    assert f"tiny {backbone} checkpoint" in capsys.readouterr().out
    model = AutoModelForImageTextToText.from_pretrained(str(tmp_path / "m"))
    wanted = Qwen3VLForConditionalGeneration if backbone == "qwen3-vl" else Qwen2_5_VLForConditionalGeneration
    assert type(model) is wanted and model.config.streaming == {"frame_size": 64}
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "m"))
    text = tokenizer.apply_chat_template([{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Hi"}]}],
                                         tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Hi<|im_end|>\n"
                         "<|im_start|>assistant\n")
    assert ("You are a helpful assistant." in text) == (backbone == "qwen2.5-vl")  # each family's default
    image = Qwen2VLImageProcessorPil.from_pretrained(str(tmp_path / "m"))
    assert (image.patch_size, image.merge_size, image.temporal_patch_size) == (8, 2, 2)
    video = json.loads((tmp_path / "m" / "video_preprocessor_config.json").read_text())
    assert video["video_processor_type"] == ("Qwen3VLVideoProcessor" if backbone == "qwen3-vl"
                                             else "Qwen2VLVideoProcessor")


@pytest.mark.parametrize("backbone", BACKBONES)
def test_qwen_stream_answers_at_each_time_and_shows_patches(tiny_qwen, demo_mp4, backbone, capsys):
    args = ["stream", str(demo_mp4), "--model", str(tiny_qwen(backbone)), "--fps", "2", "--max-new-tokens", "4",
            "--ask", "2:Where is it?", "--ask", "6.5:What is the ball doing?", "--json", "--show-memory"]
    assert main(args) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["time"] for r in records] == [2.0, 6.5]
    first = records[0]["memory"]  # frames 0..4 seen: two patches, and frame 4 waiting for its pair
    assert [(m["index"], m["time"], m["tokens"]) for m in first] == [  # the pyramid pools patch 2 to its top level
        (0, 0.25 if backbone == "qwen3-vl" else 0.0, 16), (2, 1.25 if backbone == "qwen3-vl" else 1.0, 1),
        (4, 2.0, 16)]
    assert main(args + ["--memory", "recent", "--recent-frames", "4"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [m["index"] for m in records[1]["memory"]] == [10, 12]  # 14 frames, 0 to 6.5 s: the last two patches
    assert records[1]["memory"][0]["tokens"] == 16


@pytest.mark.parametrize("backbone", BACKBONES)
def test_qwen_chat_answers_about_an_image(tiny_qwen, backbone, tmp_path, capsys):
    path = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 90, 3), dtype=np.uint8)).save(path)
    assert main(["chat", "--model", str(tiny_qwen(backbone)), "--image", str(path), "--max-new-tokens", "3",
                 "What is this?"]) == 0
    assert capsys.readouterr().out.strip()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_qwen_eval_runs_ovbench_under_the_stream_protocol(tiny_qwen, ovbench_sample, backbone, tmp_path):
    anno, roots = ovbench_sample(f"qwen-{backbone}", lambda entries: entries[:2])
    out = tmp_path / "out"
    args = ["--model", str(tiny_qwen(backbone)), "--anno-dir", str(anno), "--protocol", "stream", "--output-dir",
            str(out), "--fps", "1", "--max-new-tokens", "4", "--memory", "recent"]
    for subset, path in roots.items():
        args += ["--data-root", f"{subset}={path}"]
    assert eval_main(args) == 0
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 8 and all(r["status"] == "ok" for r in records)
    runs = [int(n) for r in records for n in re.findall(r"<\|video_pad\|>\*(\d+)", r["prompt"])]  # compacted
    per_block = (16,) if backbone == "qwen3-vl" else (16, 32, 48)  # Qwen2.5-VL: one video of the held patches
    assert runs and all(n in per_block for n in runs)  # 4x4 merged tokens a patch: 2 patches and one waiting
    assert json.loads((out / "results.json").read_text())["overall"]["total"] == 8


def test_bad_qwen_inputs_are_one_line(tiny_qwen, demo_mp4, tmp_path, capsys):
    model = str(tiny_qwen("qwen3-vl"))
    cases = [
        (["--frame-size", "100"], "--frame-size 100: qwen3-vl grids frames in blocks of 16 pixels"),
        (["--frame-size", "1024"], "--frame-size 1024: 1048576 pixels a frame is outside the processor's"),
        (["--memory", "recent", "--recent-frames", "3"], "temporal patches of 2, so memory holds whole patches"),
        (["--kv-cache", "static"], "--kv-cache static: qwen3-vl streams with the dynamic cache only"),
    ]
    for extra, message in cases:
        assert main(["stream", str(demo_mp4), "--model", model, "--ask", "1:Q", *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({"model_type": "llava_onevision"}))
    assert main(["stream", str(demo_mp4), "--model", str(odd), "--ask", "1:Q"]) == 2
    err = capsys.readouterr().err
    assert "model_type 'llava_onevision' is not a backbone this project streams with (known: " in err
    assert "qwen3_vl" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("backbone", BACKBONES)
def test_the_demos_fanout_encodes_whole_patches_once_for_every_memory(tiny_qwen, backbone):
    """The live view encodes frames as they come, one batch at a time: a frame waits for its pair, every memory
    shows it meanwhile, and the pair is encoded once when it completes."""
    import threading

    from videochat_online.backbones import load_engine
    from videochat_online.data.video import VideoFrame
    from videochat_online.live import Fanout
    from videochat_online.memory import MemorySettings

    engine = load_engine(str(tiny_qwen(backbone)))
    calls = []
    encode = engine.encode_frames
    engine.encode_frames = lambda frames: calls.append(len(frames)) or encode(frames)
    fanout = Fanout(engine, MemorySettings(), threading.Lock())
    rng = np.random.default_rng(0)
    frames = [VideoFrame(i, i / 2, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for i in range(4)]
    fanout.add(frames[:3])
    assert calls == [2]  # one patch; frame 2 waits
    for session in fanout.sessions.values():
        assert [f.index for f in session.shown()] == [0, 2] and len(session.memory.frames()) == 1
    assert fanout.sessions["recent"].ask("Where?", max_new_tokens=2).prompt.count("<|vision_start|>") == (
        2 if backbone == "qwen3-vl" else 1)
    fanout.add(frames[3:])
    assert calls[-1] == 2 and all(len(s.memory.frames()) == 2 and not s.unpaired for s in fanout.sessions.values())
