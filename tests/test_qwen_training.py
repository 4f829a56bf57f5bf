"""Training a Qwen-VL backbone with the project's recipe: samples laid out as a stream shows them, LoRA adapters
that learn, and a checkpoint that streams back with the memory and rate it was trained with."""

import json

import pytest
import torch

from videochat_online.backbones import load_engine
from videochat_online.cli import main
from videochat_online.synthetic.build import build
from videochat_online.train.sft import main as sft_main


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return build(tmp_path_factory.mktemp("synth") / "world", train_videos=4, test_videos=1, seed=0)


@pytest.mark.parametrize("backbone", ["qwen3-vl", "qwen2.5-vl"])
def test_qwen_lora_on_the_synthetic_world_learns_saves_and_streams_back(tiny_qwen, synthetic, backbone, tmp_path,
                                                                        capsys):
    start, out = tiny_qwen(backbone), tmp_path / "lora"
    assert sft_main(["--model_name_or_path", str(start), "--meta_path", str(synthetic / "train/stage2.json"),
                     "--output_dir", str(out), "--per_device_train_batch_size", "2", "--learning_rate", "5e-3",
                     "--logging_steps", "1", "--report_to", "none", "--max_seq_length", "4096", "--use_cpu", "True",
                     "--seed", "0", "--save_strategy", "no", "--max_steps", "4", "--use_llm_lora", "4",
                     "--freeze_llm", "True", "--fps", "2", "--memory", "recent", "--recent_frames", "4"]) == 0
    history = [h["loss"] for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert len(history) == 4 and all(torch.isfinite(torch.tensor(history)))
    trained, base = load_engine(str(out)), load_engine(str(start))
    layer = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(trained.model.state_dict()[layer], base.model.state_dict()[layer])  # adapters merged in
    vision = "model.visual.blocks.0.attn.qkv.weight"
    assert torch.equal(trained.model.state_dict()[vision], base.model.state_dict()[vision])  # the frozen tower
    assert trained.config.fps == 2 and trained.config.memory == {"mode": "recent", "recent_frames": 4}
    video = synthetic / "videos/test/synth_test_0000.mp4"
    assert main(["stream", str(video), "--model", str(out), "--ask", "6:Where is the square now?", "--json",
                 "--show-memory", "--max-new-tokens", "4"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"')]
    assert [m["index"] for m in record["memory"]] == [8, 10, 12]  # 2 fps, the last 4 frames and the 13th waiting


def test_a_qwen_training_sample_is_laid_out_as_the_stream_shows_it(tiny_qwen, synthetic):
    """The online sample's first turn holds the patches up to its time, written as the engine writes memory, and
    its position ids are the engine's for that prompt."""
    from videochat_online.memory import MemorySettings
    from videochat_online.train.dataset import DataConfig, SFTDataset, load_meta
    from videochat_online.train.qwen import QwenSampleBuilder

    engine = load_engine(str(tiny_qwen("qwen3-vl")))
    data = DataConfig(fps=2.0, memory=MemorySettings(mode="window", window=64))
    specs = load_meta(synthetic / "train/stage2.json")
    dataset = SFTDataset(specs, engine.tokenizer, None, data, builder=QwenSampleBuilder(engine.tokenizer, engine.layout,
                                                                                         data))
    sample = dataset.load(0)  # synth_online: a dialogue sampled as a stream
    ids = sample["input_ids"]
    text = engine.tokenizer.decode(ids)
    first_time = json.loads((synthetic / "train/online.jsonl").read_text().splitlines()[0])["conversations"][0]["timestamps"]
    stamps = [float(s) for s in __import__("re").findall(r"<([\d.]+) seconds>", text)]
    assert stamps and stamps == sorted(stamps) and stamps[0] == 0.2  # frames at 0 and 0.5 s: their mean, .1f
    assert len(sample["pixel_values"]) == len(stamps) == len(sample["grid_sizes"])
    assert (ids == engine.pad_ids[0]).sum() == 16 * len(stamps)
    assert sample["position_ids"].shape == (3, len(ids))
    assert max(stamps) <= sample["position_ids"].shape[1] and first_time > 0
    labelled = sample["labels"] != -100
    assert labelled.any() and not labelled[ids == engine.pad_ids[0]].any()
