"""Training: annotation formats, loss masks, truncation, sampling, meta files, and tiny training runs."""

import json
import os
import subprocess
import sys

import pytest
import torch

from videochat_online.chat import ChatEngine
from videochat_online.conversation import IMG_CONTEXT
from videochat_online.data.video import open_video
from videochat_online.model import load_pretrained
from videochat_online.memory import MemorySettings
from videochat_online.streaming import StreamingSession
from training_data import write_demo_training_data
from videochat_online.errors import InputError
from videochat_online.train.dataset import DataConfig, SFTDataset, load_meta
from videochat_online.train.failures import FailedSamplesError
from videochat_online.train.formats import read_annotation
from videochat_online.train.sampling import sample_times
from videochat_online.train.sft import main as sft_main


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo_training_data(tmp_path_factory.mktemp("train") / "data", samples=3)


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_pretrained(tiny_dir("native", "phi3"))


def labelled_runs(labels):
    """The runs of consecutive loss-carrying token ids."""
    runs, current = [], []
    for t in labels.tolist():
        if t == -100:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(t)
    return runs + ([current] if current else [])


def test_loss_covers_exactly_the_assistant_replies_of_every_format(demo, tiny):
    model, tokenizer = tiny
    dataset = SFTDataset(load_meta(demo), tokenizer, model.config, DataConfig(max_seq_length=8192))
    formats = set()
    for index, (d, i) in enumerate(dataset.items):
        spec = dataset.specs[d]
        conv = dataset.conversation(index)
        sample = dataset.load(index)
        runs = [tokenizer.decode(run) for run in labelled_runs(sample["labels"])]
        assert runs == [t.assistant + "<|end|>" for t in conv.turns], spec.name
        assert len(conv.turns) >= 2  # multi-turn samples
        n_image_tokens = int((sample["input_ids"] == tokenizer.convert_tokens_to_ids(IMG_CONTEXT)).sum())
        assert n_image_tokens == int((sample["grid_sizes"] ** 2).sum()) > 0
        formats.add(spec.name)
    assert formats == {"demo_llava", "demo_videochat2", "demo_online", "demo_tracking", "demo_online_frames"}


def test_online_turns_show_the_frames_since_the_previous_turn(demo, tiny):
    model, tokenizer = tiny
    dataset = SFTDataset([s for s in load_meta(demo) if s.name == "demo_online"], tokenizer, model.config,
                         DataConfig(max_seq_length=8192))
    dataset.specs[0].data_augment = False
    text = tokenizer.decode(dataset.load(0)["input_ids"]).replace(IMG_CONTEXT, "")
    first, second = text.split("<|user|>\n")[1:]
    # 4 frames over [0, 3.5 s] (1 fps, segment middles 0.44, 1.31, 2.19, 3.06 s): the turn asked at 1 s shows
    # the first; the turn at 3.5 s the other three
    assert "Frame1 at 0.4s" in first and "Frame2" not in first and first.rstrip().endswith("Where is the ball now?<|end|><|assistant|>\nOn the left.<|end|>")
    assert "Frame2 at 1.3s" in second and "Frame4 at 3.1s" in second and "Frame1 " not in second


def test_stream_sampling_shows_each_turn_the_frame_at_its_time(demo, tiny, tmp_path):
    model, tokenizer = tiny
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"online": {"annotation": str(demo.parent / "online.jsonl"),
                                           "data_root": str(demo.parent), "sampling": "stream"}}))
    dataset = SFTDataset(load_meta(meta), tokenizer, model.config, DataConfig(max_seq_length=8192))
    first, second = tokenizer.decode(dataset.load(0)["input_ids"]).replace(IMG_CONTEXT, "").split("<|user|>\n")[1:]
    # frames at 0, 1, 2, 3 s (1 fps over [0, 3.5 s], as `videochat-online eval` streams it): the turn asked at
    # 1 s shows the frames at 0 and 1 s; the turn at 3.5 s those at 2 and 3 s
    assert "Frame1 at 0.0s" in first and "Frame2 at 1.0s" in first and "Frame3" not in first
    assert "Frame3 at 2.0s" in second and "Frame4 at 3.0s" in second and "Frame5" not in second
    for bad, message in [({"sampling": "uniform"}, ": sampling is 'uniform'; it must be segments or stream"),
                         ({"sampling": "stream", "num_frames": 8}, " samples as a stream, at an fps, so it cannot set num_frames")]:
        meta.write_text(json.dumps({"online": {"annotation": "a.jsonl", **bad}}))
        with pytest.raises(Exception, match=f"{meta}: dataset 'online'{message}"):
            load_meta(meta)


def test_truncation_keeps_whole_turns(demo, tiny):
    model, tokenizer = tiny
    specs = [s for s in load_meta(demo) if s.name == "demo_llava"]
    full = SFTDataset(specs, tokenizer, model.config, DataConfig(max_seq_length=8192)).load(0)
    one_turn = len(full["input_ids"]) - 12  # room for the first turn, not for the second
    cut = SFTDataset(specs, tokenizer, model.config, DataConfig(max_seq_length=one_turn)).load(0)
    assert len(cut["input_ids"]) < one_turn
    assert [tokenizer.decode(r) for r in labelled_runs(cut["labels"])] == ["On the right.<|end|>"]
    assert torch.equal(cut["pixel_values"], full["pixel_values"])  # the image is kept whole
    too_short = SFTDataset(specs, tokenizer, model.config, DataConfig(max_seq_length=100, max_failed_samples=1))
    with pytest.raises(FailedSamplesError, match=r"2 samples in a row fail to load; the first: demo_llava/0: "
                                                 r"SampleTooLong: the first turn alone is"):
        too_short[0]


def test_failed_samples_are_skipped_and_counted(demo, tiny, tmp_path):
    model, tokenizer = tiny
    entries = read_annotation(demo.parent / "videochat2.json")
    entries[0]["video"] = "videos/missing.mp4"
    (demo.parent / "broken.json").write_text(json.dumps(entries))
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"broken": {"annotation": str(demo.parent / "broken.json"),
                                           "data_root": str(demo.parent)}}))
    dataset = SFTDataset(load_meta(meta), tokenizer, model.config, DataConfig(max_seq_length=8192))
    sample = dataset[0]  # sample 0 fails: sample 1 comes instead, carrying the failure
    assert torch.equal(sample["input_ids"], dataset.load(1)["input_ids"])
    (key, reason), = sample["failed_samples"]
    assert key == "broken/0" and "missing.mp4" in reason
    assert dataset[1]["failed_samples"] == []


def test_an_image_too_big_to_decode_is_a_skipped_and_counted_sample(demo, tiny, tmp_path):
    from test_reliability import png_header

    model, tokenizer = tiny
    png_header(tmp_path / "bomb.png", 20000, 10000)  # a few dozen bytes that claim 200 million pixels
    entries = [{"image": "bomb.png", "conversations": [{"from": "human", "value": "<image>\nWhat is it?"},
                                                       {"from": "gpt", "value": "A bomb."}]},
               {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]}]
    (tmp_path / "stills.json").write_text(json.dumps(entries))
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"stills": {"annotation": "stills.json"}}))
    dataset = SFTDataset(load_meta(meta), tokenizer, model.config, DataConfig(max_seq_length=8192))
    (key, reason), = dataset[0]["failed_samples"]
    assert key == "stills/0" and "bomb.png: refused as a decompression bomb" in reason


def test_sampling_and_pyramid_arrangement():
    assert sample_times(0, 4, fps=1) == pytest.approx([0.4, 1.2, 2.0, 2.8, 3.6])
    assert sample_times(0, 100, fps=1, max_frames=4) == pytest.approx([12.5, 37.5, 62.5, 87.5])
    assert sample_times(10, 12, num_frames=2) == pytest.approx([10.5, 11.5])
    random_times = sample_times(0, 4, fps=1, mode="random")
    assert all(0.8 * k <= t < 0.8 * (k + 1) for k, t in enumerate(random_times)) and random_times != sample_times(0, 4, fps=1)
    pyramid = MemorySettings()  # the published model's grid 16: levels 16, 8, 4 at intervals 8, 4, 1
    assert pyramid.policy.training_grids(pyramid, 16, 10) == [16, 4, 4, 4, 8, 4, 4, 4, 16, 4]
    # "stream": the frames a stream read at fps shows, every 1/fps from the start, the end included
    assert sample_times(0, 3.5, fps=1, mode="stream") == [0, 1, 2, 3]
    assert sample_times(2, 4, fps=2, mode="stream") == [2, 2.5, 3, 3.5, 4]
    assert sample_times(0, 10, fps=1, max_frames=3, mode="stream") == [0, 5, 10]  # spread over the stream's frames
    with pytest.raises(ValueError, match="give fps"):
        sample_times(0, 4, num_frames=2, mode="stream")


def test_meta_files(demo, tmp_path):
    specs = load_meta(demo)
    assert [s.name for s in specs] == ["demo_llava", "demo_videochat2", "demo_online", "demo_tracking",
                                       "demo_online_frames"]
    assert specs[3].repeat_time == 0.5 and specs[2].data_augment and specs[1].max_frames == 8
    assert specs[4].folder_fps == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"x": {"annotation": "a.json", "repeat": 2}}))
    with pytest.raises(Exception, match=r"dataset 'x' has unknown keys \['repeat'\]"):
        load_meta(bad)


@pytest.mark.parametrize("meta, message", [
    ([{"annotation": "a.json"}], "a meta file is a JSON object of datasets (name -> settings), with at least one"),
    ({}, "a meta file is a JSON object of datasets (name -> settings), with at least one"),
    ({"x": [1]}, "dataset 'x' needs an 'annotation'"),
    ({"x": {"annotation": "a.json", "repeat_time": "abc"}}, "dataset 'x': repeat_time is 'abc'; it must be a number > 0"),
    ({"x": {"annotation": "a.json", "repeat_time": 0}}, "dataset 'x': repeat_time is 0; it must be a number > 0"),
    ({"x": {"annotation": "a.json", "repeat_time": -1}}, "dataset 'x': repeat_time is -1; it must be a number > 0"),
    ({"x": {"annotation": "a.json", "repeat_time": 1e9}}, "dataset 'x': repeat_time is 1e+09; it must be at most 1000"),
    ({"x": {"annotation": "a.json", "repeat_time": 1e308}}, "dataset 'x': repeat_time is 1e+308; it must be at most 1000"),
    ({"x": {"annotation": "a.json", "repeat_time": 1e6}}, "dataset 'x': repeat_time is 1e+06; it must be at most 1000"),
    ({"x": {"annotation": "a.json", "repeat_time": 0.01}}, "dataset 'x': repeat_time 0.01 of its 1 samples keeps none"),
    ({"x": {"annotation": "a.json", "fps": 0}}, "dataset 'x': fps is 0; it must be a number > 0"),
    ({"x": {"annotation": "a.json", "fps": "fast"}}, "dataset 'x': fps is 'fast'; it must be a number > 0"),
    ({"x": {"annotation": "a.json", "num_frames": 2.5}}, "dataset 'x': num_frames is 2.5; it must be an integer >= 1"),
    ({"x": {"annotation": "a.json", "data_augment": "yes"}}, "dataset 'x': data_augment is 'yes'; it must be true or false"),
    ({"x": {"annotation": "empty.json"}}, "empty.json: dataset 'x' of {meta}: no samples"),
    ({"x": {"annotation": "numbers.json"}}, "numbers.json: dataset 'x' of {meta}: each sample must be a JSON object"),
    ({"x": {"annotation": "missing.json"}}, "missing.json: no such annotation file"),
])
def test_a_meta_file_is_checked_as_a_whole_before_the_model_loads(tmp_path, meta, message):
    (tmp_path / "a.json").write_text(json.dumps([{"image": "x.png", "conversations": []}]))
    (tmp_path / "empty.json").write_text("[]")
    (tmp_path / "numbers.json").write_text("[1, 2]")
    file = tmp_path / "meta.json"
    file.write_text(json.dumps(meta))
    with pytest.raises(InputError) as err:
        load_meta(file)
    assert message.format(meta=file) in str(err.value) and "\n" not in str(err.value)


def run_sft(tiny_path, meta, out, *extra):
    return sft_main(["--model_name_or_path", str(tiny_path), "--meta_path", str(meta), "--output_dir", str(out),
                     "--per_device_train_batch_size", "2", "--learning_rate", "2e-3", "--logging_steps", "1",
                     "--report_to", "none", "--max_seq_length", "4096", "--use_cpu", "True", "--seed", "0",
                     "--save_strategy", "no", *extra])


def losses(out):
    return [h["loss"] for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in h]


def test_tiny_model_trains_on_every_format_and_reloads(tiny_dir, demo, tmp_path):
    out = tmp_path / "run"
    assert run_sft(tiny_dir(), demo, out, "--max_steps", "36", "--train_sampling_strategy", "group_by_length",
                   "--gradient_checkpointing", "True") == 0
    history = losses(out)
    assert len(history) == 36
    assert sum(history[-6:]) / 6 < 0.6 * sum(history[:6]) / 6, history
    config = json.loads((out / "run_config.json").read_text())
    assert config["samples"] == 13 and config["model"]["freeze_vision"] is True
    model, tokenizer = load_pretrained(out)  # strict: every weight present
    before, _ = load_pretrained(tiny_dir())
    assert not torch.equal(model.mlp1[1].weight, before.mlp1[1].weight)
    assert torch.equal(model.vision_model.embeddings.cls_token, before.vision_model.embeddings.cls_token)  # frozen
    session = StreamingSession(ChatEngine(model, tokenizer), MemorySettings().build(model.config.grid_size))
    session.push(list(open_video(demo.parent / "videos" / "clip0.mp4").sample(2)))
    reply = session.ask("Which way does the ball move?", max_new_tokens=8)
    assert reply.prompt.count("Frame") == 8 and reply.token_ids


def test_lora_and_resume(tiny_dir, demo, tmp_path):
    lora = tmp_path / "lora"
    assert run_sft(tiny_dir(), demo, lora, "--max_steps", "4", "--use_llm_lora", "4", "--freeze_llm", "True") == 0
    merged, _ = load_pretrained(lora)  # adapters merged into plain weights
    base, _ = load_pretrained(tiny_dir())
    layer = "language_model.model.layers.0.self_attn.qkv_proj.weight"
    assert not torch.equal(merged.state_dict()[layer], base.state_dict()[layer])

    whole, part = tmp_path / "whole", tmp_path / "part"
    steps = ["--train_sampling_strategy", "sequential"]
    assert run_sft(tiny_dir(), demo, whole, "--max_steps", "6", *steps) == 0
    assert run_sft(tiny_dir(), demo, part, "--max_steps", "6", "--save_strategy", "steps", "--save_steps", "3",
                   *steps) == 0
    assert (part / "checkpoint-3").is_dir()
    resumed = tmp_path / "resumed"
    assert run_sft(tiny_dir(), demo, resumed, "--max_steps", "6", "--resume_from_checkpoint",
                   str(part / "checkpoint-3"), *steps) == 0
    assert losses(resumed)[-3:] == pytest.approx(losses(whole)[-3:], rel=1e-4)


def test_deepspeed_zero2_first_step_loss_matches_plain_trainer(tiny_dir, demo, tmp_path):
    plain = tmp_path / "plain"
    assert run_sft(tiny_dir(), demo, plain, "--max_steps", "1", "--train_sampling_strategy", "sequential") == 0
    ds = tmp_path / "ds"
    env = {**os.environ, "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": "29571"}
    zero2 = os.path.join(os.path.dirname(__file__), "..", "shell", "sft", "zero_stage2_config.json")
    result = subprocess.run([sys.executable, "-m", "videochat_online.train.sft", "--model_name_or_path",
                             str(tiny_dir()), "--meta_path", str(demo), "--output_dir", str(ds),
                             "--per_device_train_batch_size", "2", "--learning_rate", "2e-3", "--logging_steps", "1",
                             "--report_to", "none", "--max_seq_length", "4096", "--use_cpu", "True", "--seed", "0",
                             "--save_strategy", "no", "--max_steps", "1", "--train_sampling_strategy", "sequential",
                             "--deepspeed", zero2], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert losses(ds) == pytest.approx(losses(plain), rel=1e-6)
    load_pretrained(ds)


@pytest.mark.parametrize("stage, accumulation, batch, nodes", [(1, 128, 1, 1), (2, 16, 2, 4)])
def test_launchers_compute_the_published_recipe(tmp_path, stage, accumulation, batch, nodes):
    repo = os.path.join(os.path.dirname(__file__), "..")
    env = {**os.environ, "DRY_RUN": "1", "MODEL": "/ckpt/InternVL2-4B", "OUTPUT_DIR": str(tmp_path)}
    out = subprocess.run(["bash", f"{repo}/shell/sft/videochat_online_4b_stage{stage}_ft.sh"], env=env,
                         capture_output=True, text=True, check=True).stdout
    command = out.splitlines()[-1].split()
    value = lambda flag: command[command.index(flag) + 1]  # noqa: E731
    assert value("--gradient_accumulation_steps") == str(accumulation) and value("--nnodes") == str(nodes)
    # what the entry point's own parser reads from the recipe, run from the repository root as the launcher does
    from videochat_online.train.sft import RecipeParser

    entry = command[command.index("videochat_online.train.sft") + 1:]
    cwd = os.getcwd()
    try:
        os.chdir(repo)
        model, data, training = RecipeParser().parse(entry + ["--use_cpu", "True"])  # the recipe's bf16 needs a GPU
        # the sets and their fields (the annotation files are the user's download, not shipped)
        assert sum(len(load_meta(m, read=False)) for m in data.meta_path) == 6 + (11 if stage == 2 else 0)
    finally:
        os.chdir(cwd)
    assert [os.path.basename(m) for m in data.meta_path] == ["stage1_offline.json", "stage2_online.json"][:stage]
    assert training.per_device_train_batch_size == batch and training.gradient_accumulation_steps == accumulation
    assert model.model_name_or_path == "/ckpt/InternVL2-4B" and model.freeze_vision and model.drop_path_rate == 0.1
    assert data.fps == 1 and data.intervals == "8,4,1" and training.learning_rate == 1e-4 and training.bf16


def test_bad_meta_file_is_one_line(tiny_dir, tmp_path, capsys):
    tiny_dir()
    capsys.readouterr()
    assert run_sft(tiny_dir(), tmp_path / "missing.json", tmp_path / "out", "--max_steps", "1") == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing.json'}: no such meta file\n"


# --------------------------------------------------------------------------------------------------
# The published annotation layouts, failures over workers and ranks, ZeRO-3
# --------------------------------------------------------------------------------------------------
def published_tracking_set(root, n_files=10):
    """One GOT-10k-style sample as the published annotations write it (facts from the published pipeline):
    image files relative to the sample's own folder, a dict query template with a <bbox> slot."""
    from videochat_online.tools.demo_media import write_frame_folder

    write_frame_folder(root / "frames" / "GOT-10k_Train_000001", n_files, 64, 48, pattern="{:08d}.jpg")
    boxes = [{"timestamp": 0.1 * j + 0.04, "bbox": [10 + j, 20, 30 + 2 * j, 40]} for j in range(n_files)]
    entry = {"video": "GOT-10k_Train_000001", "all_image_files": [f"{j + 1:08d}.jpg" for j in range(n_files)],
             "image_bboxes": boxes, "fps": 10,
             "query_template": {"from": "human", "value": "<video>\nTrack the object at <bbox>. Where is it?"}}
    (root / "got10k.json").write_text(json.dumps([entry]))
    meta = root / "meta_tracking.json"
    meta.write_text(json.dumps({"got10k": {"annotation": "got10k.json", "data_root": "frames", "max_frames": 4}}))
    return meta, entry


def test_tracking_labels_are_the_published_replies(tiny, tmp_path):
    model, tokenizer = tiny
    meta, entry = published_tracking_set(tmp_path)
    dataset = SFTDataset(load_meta(meta), tokenizer, model.config, DataConfig(max_seq_length=8192))
    sample = dataset.load(0)
    kept = [0, 3, 6, 9]  # np.linspace(0, 9, 4, dtype=int): at most max_frames=4 frames, evenly spaced
    boxes = [entry["image_bboxes"][j] for j in kept]
    text = tokenizer.decode(sample["input_ids"])
    k = next(j for j, b in enumerate(boxes) if f"Track the object at {b['bbox']}. Where is it?" in text)
    line = lambda b: f"At {round(b['timestamp'], 1)}s, {b['bbox']}"  # noqa: E731
    expected = ["\n".join(line(b) for b in boxes[: k + 1]) + "<|end|>"] + [line(b) + "<|end|>" for b in boxes[k + 1:]]
    assert [tokenizer.decode(run) for run in labelled_runs(sample["labels"])] == expected
    assert "At 0.0s, [10, 20, 30, 40]" in expected[0]  # t rounded to 0.1 s, the box as the file writes it
    assert text.count("Frame") == 4 and f"Frame{k + 1} at {round(boxes[k]['timestamp'], 1)}s" in text


def test_online_and_offline_frame_lines(demo, tiny):
    model, tokenizer = tiny
    dataset = SFTDataset(load_meta(demo), tokenizer, model.config, DataConfig(max_seq_length=8192))
    names = [dataset.specs[d].name for d, _ in dataset.items]
    offline = tokenizer.decode(dataset.load(names.index("demo_videochat2"))["input_ids"])
    assert "Frame1: <img>" in offline and " at " not in offline.split("<|user|>")[1].split("\n")[0]
    folder = tokenizer.decode(dataset.load(names.index("demo_online_frames"))["input_ids"])  # a frame folder, 2 fps
    assert "Frame1 at 0.4s: <img>" in folder  # segment middles of the 2.5 s clip at 1 fps


def test_a_frame_folder_without_a_rate_is_a_clear_skip(demo, tiny, tmp_path):
    model, tokenizer = tiny
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"frames": {"annotation": str(demo.parent / "online_frames.jsonl"),
                                           "data_root": str(demo.parent / "frames")}}))
    dataset = SFTDataset(load_meta(meta), tokenizer, model.config, DataConfig(max_seq_length=8192))
    with pytest.raises(Exception, match="a frame folder needs its frame rate: give the sample an 'fps' or the meta "
                                        "file's dataset 'frames' a 'folder_fps'"):
        dataset.load(0)


def broken_meta(demo, tmp_path, broken=3):
    """The demo sets plus `broken` samples (not in a row) whose videos are missing."""
    entries = read_annotation(demo.parent / "videochat2.json")
    bad = [dict(e, video=f"videos/missing{k}.mp4") for k, e in enumerate(entries[:broken])]
    mixed = [x for pair in zip(bad, entries) for x in pair]
    (tmp_path / "broken.json").write_text(json.dumps(mixed))
    meta = json.loads(demo.read_text())
    meta = {k: dict(v, annotation=str(demo.parent / v["annotation"]), data_root=str(demo.parent / v["data_root"]))
            for k, v in meta.items()}
    meta["broken"] = {"annotation": str(tmp_path / "broken.json"), "data_root": str(demo.parent), "max_frames": 8}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    return tmp_path / "meta.json"


def test_failed_samples_are_counted_once_over_workers(tiny_dir, demo, tmp_path, capsys):
    meta = broken_meta(demo, tmp_path)
    out = tmp_path / "run"
    # two epochs (every sample, the broken ones too, is met twice), two DataLoader workers
    assert run_sft(tiny_dir(), meta, out, "--num_train_epochs", "2", "--dataloader_num_workers", "2",
                   "--train_sampling_strategy", "sequential") == 0
    report = json.loads((out / "failed_samples.json").read_text())
    assert report["total"] == 3 and sorted(f["sample"] for f in report["first"]) == ["broken/0", "broken/2", "broken/4"]
    assert all("missing" in f["reason"] for f in report["first"])
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert [h["failed_samples"] for h in history if "loss" in h][-1] == 3
    runs = losses(out)
    assert sum(runs[-3:]) / 3 < sum(runs[:3]) / 3  # the loss falls
    capsys.readouterr()
    stopped = tmp_path / "stopped"
    assert run_sft(tiny_dir(), meta, stopped, "--num_train_epochs", "2", "--dataloader_num_workers", "2",
                   "--train_sampling_strategy", "sequential", "--max_failed_samples", "2") == 2
    errors = [line[line.index("error: "):] for line in capsys.readouterr().err.splitlines() if "error: " in line]
    assert len(errors) == 1  # one line (after the progress bar's), not a traceback
    assert errors[0].startswith("error: 3 samples failed to load, more than max_failed_samples=2; the first: broken/")
    assert json.loads((stopped / "failed_samples.json").read_text())["total"] == 3


def test_failed_samples_are_counted_across_a_resume(tiny_dir, demo, tmp_path, capsys):
    meta = broken_meta(demo, tmp_path)
    steps = ["--train_sampling_strategy", "sequential", "--num_train_epochs", "1"]
    whole, part, resumed = tmp_path / "whole", tmp_path / "part", tmp_path / "resumed"
    assert run_sft(tiny_dir(), meta, whole, *steps) == 0
    assert run_sft(tiny_dir(), meta, part, *steps, "--save_strategy", "steps", "--save_steps", "8") == 0
    total = json.loads((whole / "failed_samples.json").read_text())["total"]
    before = json.loads((part / "checkpoint-8" / "failed_samples_ledger.json").read_text())
    assert total == 3 and 0 < len(before) < total  # some failed before the checkpoint, some after
    assert run_sft(tiny_dir(), meta, resumed, *steps, "--resume_from_checkpoint", str(part / "checkpoint-8")) == 0
    assert json.loads((resumed / "failed_samples.json").read_text())["total"] == total
    # True: the newest checkpoint of the output folder; none there, or a torn one, is one line
    assert run_sft(tiny_dir(), meta, part, *steps, "--resume_from_checkpoint", "True") == 0
    capsys.readouterr()
    empty = tmp_path / "empty"
    assert run_sft(tiny_dir(), meta, empty, *steps, "--resume_from_checkpoint", "True") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: --resume_from_checkpoint True: {empty} holds no checkpoint-N folder to resume from")
    (part / "checkpoint-8" / "trainer_state.json").unlink()
    assert run_sft(tiny_dir(), meta, resumed, *steps, "--resume_from_checkpoint", str(part / "checkpoint-8")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {part / 'checkpoint-8'}: not a whole checkpoint (no trainer_state.json: a save cut short?); resume "
        "from an earlier one")


def run_deepspeed(tiny_path, meta, out, config, *extra, port=29581):
    # one process: the variables a launcher sets (LOCAL_SIZE spares older DeepSpeed's CPU accelerator a numactl call)
    env = {**os.environ, "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_SIZE": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    config = os.path.join(os.path.dirname(__file__), "..", "shell", "sft", config)
    return subprocess.run([sys.executable, "-m", "videochat_online.train.sft", "--model_name_or_path", str(tiny_path),
                           "--meta_path", str(meta), "--output_dir", str(out), "--per_device_train_batch_size", "1",
                           "--logging_steps", "1", "--report_to", "none", "--max_seq_length", "4096", "--use_cpu",
                           "True", "--seed", "0", "--save_strategy", "no", "--deepspeed", config, *extra],
                          capture_output=True, text=True, env=env, timeout=600)


def test_zero3_saves_full_weights_that_load_back(tiny_dir, demo, tmp_path):
    still = tmp_path / "still"
    result = run_deepspeed(tiny_dir(), demo, still, "zero_stage3_config.json", "--max_steps", "2",
                           "--learning_rate", "0", "--freeze_vision", "False")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    saved, _ = load_pretrained(still)  # strict: every weight, gathered from the ZeRO-3 partitions
    base, _ = load_pretrained(tiny_dir())
    assert all(torch.equal(a, b) for a, b in zip(saved.state_dict().values(), base.state_dict().values()))
    lora = tmp_path / "lora"
    result = run_deepspeed(tiny_dir(), demo, lora, "zero_stage3_config.json", "--max_steps", "2",
                           "--learning_rate", "5e-3", "--use_llm_lora", "4", "--freeze_llm", "True", port=29582)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    merged, _ = load_pretrained(lora)  # LoRA folded into plain weights
    layer = "language_model.model.layers.0.self_attn.qkv_proj.weight"
    assert not torch.equal(merged.state_dict()[layer], base.state_dict()[layer])
    assert torch.isfinite(merged.state_dict()["mlp1.1.weight"]).all()


def test_drop_path_reaches_the_vision_layers(tiny_dir, tmp_path):
    from videochat_online.model.original_layout import config_from_original, config_to_original

    model, _ = load_pretrained(tiny_dir())
    model.set_vision_drop_path(0.1)
    rates = [layer.drop_path_rate for layer in model.vision_model.encoder.layer]
    assert rates == pytest.approx([0.1 * i / (len(rates) - 1) for i in range(len(rates))]) and rates[-1] == 0.1
    original = config_to_original(model.config)
    assert original["vision_config"]["drop_path_rate"] == 0.1
    assert config_from_original(original, "config.json").vision_drop_path_rate == 0.1
    pixels = torch.randn(2, 3, 224, 224)
    model.eval()
    assert torch.equal(model.encode_frames(pixels), model.encode_frames(pixels))  # no effect at inference
    model.vision_model.train()
    torch.manual_seed(0)
    assert not torch.equal(model.encode_frames(pixels), model.encode_frames(pixels))  # stochastic while training


def test_zero2_on_two_processes_counts_failures_over_ranks(tiny_dir, demo, tmp_path):
    meta = broken_meta(demo, tmp_path)
    out = tmp_path / "two"
    zero2 = os.path.join(os.path.dirname(__file__), "..", "shell", "sft", "zero_stage2_config.json")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    result = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29591", "-m",
                             "videochat_online.train.sft", "--model_name_or_path", str(tiny_dir()), "--meta_path",
                             str(meta), "--output_dir", str(out), "--per_device_train_batch_size", "1",
                             "--learning_rate", "2e-3", "--logging_steps", "1", "--report_to", "none",
                             "--max_seq_length", "4096", "--use_cpu", "True", "--seed", "0", "--save_strategy", "no",
                             "--num_train_epochs", "1", "--train_sampling_strategy", "sequential", "--deepspeed", zero2],
                            capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # the broken samples (dataset items 13, 15, 17) fall to rank 1; rank 0 writes the report, gathered over ranks
    assert json.loads((out / "failed_samples.json").read_text())["total"] == 3
    load_pretrained(out)


@pytest.mark.parametrize("sample", [
    {"video": "../../../../etc/passwd", "conversations": [{"from": "human", "value": "<video>\nQ"},
                                                          {"from": "gpt", "value": "A"}]},
    {"image": "/etc/hostname", "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}]},
    {"video": "v.mp4", "QA": [{"q": "Q", "a": "A"}], "image": "../x.png"},
])
def test_a_training_samples_media_stays_inside_its_root(tmp_path, sample):
    from videochat_online.train.formats import AnnotationError, parse

    with pytest.raises(AnnotationError, match=r"malformed sample \(path '.*' (leaves its root|is absolute)"):
        parse(sample, tmp_path)


def test_a_hand_edited_ledger_is_one_line_on_resume(tmp_path):
    from videochat_online.train.failures import FailureLedger

    (tmp_path / FailureLedger.LEDGER).write_text("[1, 2]")
    with pytest.raises(InputError, match=r"failed_samples_ledger.json: not a JSON object of failed samples"):
        FailureLedger(10).restore(tmp_path)
