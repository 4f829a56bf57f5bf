"""Bad checkpoints: each gives one clear CheckpointError naming the file and the problem."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from videochat_online.cli import main
from videochat_online.errors import CheckpointError
from videochat_online.model import load_pretrained


@pytest.fixture
def copy_of(tiny_dir, tmp_path):
    def copy(layout="original", shards=1):
        dst = tmp_path / f"ckpt-{layout}-{shards}"
        shutil.copytree(tiny_dir(layout, "phi3", shards=shards), dst)
        return dst

    return copy


def load_error(path) -> str:
    with pytest.raises(CheckpointError) as err:
        load_pretrained(path)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_empty_directory(tmp_path):
    assert load_error(tmp_path) == f"{tmp_path}: the checkpoint directory is empty"


def test_missing_config(copy_of):
    root = copy_of()
    (root / "config.json").unlink()
    assert load_error(root) == f"{root / 'config.json'}: missing; a checkpoint directory needs its config.json"


def test_not_a_directory(copy_of):
    file = copy_of() / "config.json"
    assert "a checkpoint must be a directory" in load_error(file)


def test_unknown_llm_architecture(copy_of):
    root = copy_of()
    config = json.loads((root / "config.json").read_text())
    config["llm_config"]["architectures"] = ["InternLM2ForCausalLM"]
    (root / "config.json").write_text(json.dumps(config))
    message = load_error(root)
    assert message.startswith(f"{root / 'config.json'}: llm_config architecture 'InternLM2ForCausalLM' is not a causal LM")


def test_unknown_model_type(copy_of):
    root = copy_of("native")
    config = json.loads((root / "config.json").read_text())
    config["model_type"] = "llava"
    (root / "config.json").write_text(json.dumps(config))
    assert "model_type 'llava' is neither 'videochat_online'" in load_error(root)


def test_missing_shard(copy_of):
    root = copy_of(shards=2)
    (root / "model-00002-of-00002.safetensors").unlink()
    assert load_error(root) == (f"{root / 'model-00002-of-00002.safetensors'}: missing shard "
                                "(listed in model.safetensors.index.json)")


def test_tensor_of_wrong_shape(copy_of):
    root = copy_of()
    state = load_file(str(root / "model.safetensors"))
    name = "vision_model.encoder.layers.1.attn.qkv.weight"
    state[name] = torch.zeros(state[name].shape[0] - 3, state[name].shape[1])
    save_file(state, str(root / "model.safetensors"))
    message = load_error(root)
    assert "1 wrong shape" in message and f"{name} is [93, 32] in model.safetensors, the config needs [96, 32]" in message


def test_missing_and_unexpected_tensors_are_named(copy_of):
    root = copy_of("native")
    state = load_file(str(root / "model.safetensors"))
    state["mlp1.9.weight"] = state.pop("mlp1.3.weight")
    save_file(state, str(root / "model.safetensors"))
    message = load_error(root)
    assert "1 missing: mlp1.3.weight" in message and "1 unexpected: mlp1.9.weight" in message


def test_no_weights_and_corrupt_weights(copy_of):
    root = copy_of()
    (root / "model.safetensors").rename(root / "pytorch_model.bin")
    assert "no weights: neither model.safetensors nor model.safetensors.index.json (found pytorch_model.bin" in load_error(root)
    (root / "model.safetensors").write_bytes(b"\x00garbage")
    assert load_error(root).startswith(f"{root / 'model.safetensors'}: not a readable safetensors file")


def test_cli_prints_one_line_and_exits_2(copy_of, capsys):
    root = copy_of()
    (root / "config.json").write_text("{ not json")
    assert main(["chat", "--model", str(root), "hello"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {root / 'config.json'}: not valid JSON")


def test_hub_id_goes_through_snapshot_download(tiny_dir, monkeypatch):
    calls = []

    def fake_snapshot_download(repo_id, allow_patterns):
        calls.append(repo_id)
        return str(tiny_dir("original", "phi3"))

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download)
    model, _ = load_pretrained("OpenGVLab/VideoChat-Online-4B")
    assert calls == ["OpenGVLab/VideoChat-Online-4B"] and model.config.template == "phi3-chat"


def test_hub_failure_is_one_line(monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(repo_id, allow_patterns):
        raise LocalEntryNotFoundError("offline and not cached")

    monkeypatch.setattr("huggingface_hub.snapshot_download", offline)
    message = load_error("OpenGVLab/VideoChat-Online-4B")
    assert message == "OpenGVLab/VideoChat-Online-4B: not a local directory, and the hub download failed " \
                      "(offline and not cached)"
    assert load_error("./not/here").endswith("not/here: no such checkpoint directory")


def test_llm_model_type_is_inferred_or_checked(copy_of):
    root = copy_of()
    config = json.loads((root / "config.json").read_text())
    del config["llm_config"]["model_type"]
    (root / "config.json").write_text(json.dumps(config))
    model, _ = load_pretrained(root)
    assert type(model.language_model).__name__ == "Phi3ForCausalLM"
    config["llm_config"]["model_type"] = "qwen2"
    (root / "config.json").write_text(json.dumps(config))
    assert "llm_config model_type 'qwen2' does not match architecture Phi3ForCausalLM" in load_error(root)


# --------------------------------------------------------------------------------------------------
# Config fields, foreign code, shard paths and weight values
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, field", [({"hidden_size": "64"}, "hidden_size"),
                                           ({"hidden_size": 96, "num_attention_heads": 5}, "short_factor")])
def test_bad_llm_config_field_is_one_line(copy_of, change, field):
    root = copy_of("native")
    config = json.loads((root / "config.json").read_text())
    config["llm_config"].update(change)
    (root / "config.json").write_text(json.dumps(config))
    message = load_error(root)
    assert message.startswith(f"{root / 'config.json'}: invalid model config (") and field in message


MARKER_CODE = '''
import pathlib
pathlib.Path(__file__).with_name("RAN").write_text("the checkpoint's code ran")
from transformers import PreTrainedTokenizerFast


class EvilTokenizer(PreTrainedTokenizerFast):
    pass
'''


def test_a_checkpoints_code_never_runs_nor_prompts(copy_of):
    import os
    import pty
    import subprocess
    import sys

    root = copy_of("native")
    (root / "evil.py").write_text(MARKER_CODE)
    tokenizer_config = json.loads((root / "tokenizer_config.json").read_text())
    tokenizer_config["auto_map"] = {"AutoTokenizer": [None, "evil.EvilTokenizer"]}
    (root / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    config = json.loads((root / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    (root / "config.json").write_text(json.dumps(config))
    # A terminal on standard input, where transformers would ask "Do you wish to run the custom code?"
    leader, follower = pty.openpty()
    code = f"from videochat_online.model import load_pretrained; load_pretrained({str(root)!r}); print('loaded')"
    try:
        result = subprocess.run([sys.executable, "-c", code], stdin=follower, capture_output=True, text=True,
                                timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    finally:
        os.close(leader)
        os.close(follower)
    assert result.returncode == 0 and result.stdout.strip().endswith("loaded"), result.stderr[-2000:]
    assert "custom code" not in result.stdout + result.stderr
    assert not (root / "RAN").exists()


def test_a_shard_outside_the_checkpoint_is_refused(copy_of, tmp_path):
    root = copy_of("original", shards=2)
    index = json.loads((root / "model.safetensors.index.json").read_text())
    first = sorted(set(index["weight_map"].values()))[0]
    shutil.move(root / first, tmp_path / "x.safetensors")  # the weights exist, but outside the folder
    index["weight_map"] = {k: ("../x.safetensors" if v == first else v) for k, v in index["weight_map"].items()}
    (root / "model.safetensors.index.json").write_text(json.dumps(index))
    assert load_error(root) == (f"{root / 'model.safetensors.index.json'}: names the shard ../x.safetensors, "
                                "outside the checkpoint folder")


def test_non_finite_weights_fail_the_load(copy_of):
    root = copy_of("native")
    state = load_file(root / "model.safetensors")
    state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, root / "model.safetensors", metadata={"format": "pt"})
    message = load_error(root)
    assert message.startswith(f"{root}: ") and "weights hold NaN or infinite values" in message


def test_missing_tokenizer_json_and_unknown_hub_id_are_one_line(copy_of, monkeypatch):
    root = copy_of("native")
    (root / "tokenizer.json").unlink()  # tokenizer_config.json is still there
    assert load_error(root).startswith(f"{root}: the tokenizer does not load (")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_error("nobody-here/no-such-model").startswith(
        "nobody-here/no-such-model: not a local directory, and the hub download failed (")


def edit_config(root, **changes):
    config = json.loads((root / "config.json").read_text())
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            config[outer][inner] = value
        else:
            config[key] = value
    (root / "config.json").write_text(json.dumps(config))
    return root


@pytest.mark.parametrize("changes, message", [
    ({"downsample_ratio": 0}, "downsample_ratio must be a number in (0, 1], got 0"),
    ({"downsample_ratio": -0.5}, "downsample_ratio must be a number in (0, 1], got -0.5"),
    ({"vision_config.patch_size": 0}, "patch_size"),
    ({"vision_config": 7}, "vision_config must be an object of settings, got int"),
    ({"llm_config": [1, 2]}, "llm_config must be an object of settings, got list"),
    ({"select_layer": 9}, "select_layer 9 is beyond the vision tower's 2 layers"),
    ({"template": "vicuna-9"}, "unknown conversation template 'vicuna-9'"),
    ({"min_dynamic_patch": 0}, "need 1 <= min_dynamic_patch <= max_dynamic_patch"),
    ({"memory": 3}, "memory must be an object of memory settings, got int"),
], ids=lambda v: str(v)[:40])
def test_a_bad_config_field_is_one_line_before_any_module_is_built(copy_of, changes, message):
    root = edit_config(copy_of("native"), **changes)
    error = load_error(root)
    assert error.startswith(f"{root / 'config.json'}: invalid model config (") and message in error, error


def test_a_shard_index_must_map_names_to_files(copy_of):
    root = copy_of(shards=2)
    index = root / "model.safetensors.index.json"
    for weight_map in ([1, 2], {"mlp1.0.weight": 3}):
        index.write_text(json.dumps({"weight_map": weight_map}))
        assert load_error(root) == f"{index}: weight_map must map each tensor name to a shard file name"


def test_a_tensor_in_two_shards_is_refused(copy_of):
    root = copy_of(shards=2)
    first, second = root / "model-00001-of-00002.safetensors", root / "model-00002-of-00002.safetensors"
    one, two = load_file(str(first)), load_file(str(second))
    name = next(iter(one))
    two[name] = one[name] + 1  # the same tensor again, other values
    save_file(two, str(second))
    assert load_error(root) == (f"{root}: the tensor {name} is in both {first.name} and {second.name}; a checkpoint "
                                "holds each tensor once")


def test_a_weight_stored_as_integers_is_refused(copy_of):
    root = copy_of("native")
    state = load_file(str(root / "model.safetensors"))
    name = sorted(state)[0]
    state[name] = state[name].to(torch.int64)
    save_file(state, str(root / "model.safetensors"))
    assert load_error(root) == (f"{root}: 1 tensors are not floating point ({name} is I64 in model.safetensors); "
                                "every weight is F32, F16 or BF16")


def test_auto_map_is_ignored_with_one_warning(copy_of, caplog):
    root = edit_config(copy_of("native"), auto_map={"AutoModel": "modeling_evil.Model"})
    load_pretrained(root)
    warned = [r.getMessage() for r in caplog.records if "auto_map" in r.getMessage()]
    assert warned == [f"{root / 'config.json'}: its auto_map is ignored (a checkpoint's code never runs here)"]


def test_a_tokenizer_config_that_is_a_list_is_one_line(copy_of):
    root = copy_of("native")
    (root / "tokenizer_config.json").write_text("[1, 2, 3]")
    (root / "tokenizer.json").unlink()
    assert load_error(root).startswith(f"{root}: the tokenizer does not load (")
