"""Loading and saving checkpoints: this project's layout, the original InternVL layout, or a hub id.

Loading is strict: the safetensors headers are checked against the model the config describes before any
weight is read, and a missing, unexpected or mis-shaped tensor, a missing shard or an unreadable file is a
one-line `CheckpointError`. It is also safe: no code from a checkpoint runs (`trust_remote_code=False`), and
a shard index may only name files inside the checkpoint folder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError, safe_open
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.integrations import is_deepspeed_zero3_enabled

from ..conversation import IMG_CONTEXT, get_template
from ..errors import CheckpointError
from ..settings import SettingsError, check_attention, check_device
from . import original_layout
from .configuration import VideoChatOnlineConfig
from .modeling import VideoChatOnlineModel

log = logging.getLogger("videochat_online.checkpoint")
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")  # safetensors' names

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
NATIVE_MODEL_TYPE = VideoChatOnlineConfig.model_type

DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
          "fp32": torch.float32, "float32": torch.float32}


@dataclass
class Checkpoint:
    """A checkpoint directory, read as far as its headers."""

    root: Path
    config: VideoChatOnlineConfig
    layout: str  # "native" or "original"
    tensors: dict[str, tuple[Path, tuple[int, ...]]]  # stored name -> (file, shape)


# Reading a directory
def resolve(path_or_id: str | Path) -> Path:
    """A local checkpoint directory, downloading a hub id (`org/name`) when no such path exists."""
    path = Path(path_or_id).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{path}: a checkpoint must be a directory, this is a file")
        return path
    text = str(path_or_id)
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise CheckpointError(f"{path}: no such checkpoint directory")
    owner = Path(text.split("/")[0])
    if owner.is_dir():  # `runs/stage2` beside a local runs/ is a missing folder, never someone's hub repository
        raise CheckpointError(f"{path}: no such checkpoint directory ({owner}/ is a local folder, so this is not "
                              "read as a hub id)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(text, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as err:
        raise CheckpointError(f"{text}: not a local directory, and the hub download failed "
                              f"({one_line(err)})") from None


def read_config(root: Path) -> tuple[VideoChatOnlineConfig, str]:
    """The model config of a checkpoint directory and its layout ("native" or "original")."""
    path = root / CONFIG_NAME
    if not path.is_file():
        if not any(root.iterdir()):
            raise CheckpointError(f"{root}: the checkpoint directory is empty")
        raise CheckpointError(f"{path}: missing; a checkpoint directory needs its config.json")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None
    model_type = raw.get("model_type") if isinstance(raw, dict) else None
    if isinstance(raw, dict) and "auto_map" in raw:
        log.warning("%s: its auto_map is ignored (a checkpoint's code never runs here)", path)
    try:
        if model_type == original_layout.ORIGINAL_MODEL_TYPE:
            return original_layout.config_from_original(raw, str(path)), "original"
        if model_type == NATIVE_MODEL_TYPE:
            config = VideoChatOnlineConfig.from_dict(raw)
            get_template(config.template)  # a template this project knows
            return config, "native"
    except (TypeError, ValueError, KeyError, StrictDataclassError, ZeroDivisionError) as err:
        raise CheckpointError(f"{path}: invalid model config ({one_line(err)})") from None
    raise CheckpointError(f"{path}: model_type {model_type!r} is neither {NATIVE_MODEL_TYPE!r} (this project) "
                          f"nor {original_layout.ORIGINAL_MODEL_TYPE!r} (original InternVL layout)")


def weight_files(root: Path) -> list[Path]:
    """The safetensors files of a checkpoint: one file, or the shards its index names."""
    index = root / INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise CheckpointError(f"{index}: not a safetensors index ({err})") from None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise CheckpointError(f"{index}: weight_map must map each tensor name to a shard file name")
        shards = sorted(set(weight_map.values()))
        inside = root.resolve()
        for shard in shards:
            if not (root / shard).resolve().is_relative_to(inside):
                raise CheckpointError(f"{index}: names the shard {shard}, outside the checkpoint folder")
            if not (root / shard).is_file():
                raise CheckpointError(f"{root / shard}: missing shard (listed in {INDEX_NAME})")
        return [root / shard for shard in shards]
    single = root / WEIGHTS_NAME
    if single.is_file():
        return [single]
    others = sorted(p.name for p in root.glob("*.bin")) + sorted(p.name for p in root.glob("*.safetensors"))
    hint = f" (found {', '.join(others[:3])}; only {WEIGHTS_NAME} or a sharded index are read)" if others else ""
    raise CheckpointError(f"{root}: no weights: neither {WEIGHTS_NAME} nor {INDEX_NAME}{hint}")


def read_checkpoint(path_or_id: str | Path) -> Checkpoint:
    """Config, layout and tensor headers of a checkpoint; reads no weight data."""
    root = resolve(path_or_id)
    config, layout = read_config(root)
    tensors: dict[str, tuple[Path, tuple[int, ...]]] = {}
    dtypes: dict[str, str] = {}
    for file in weight_files(root):
        try:
            with safe_open(str(file), framework="pt") as f:
                for name in f.keys():
                    if name in tensors:
                        raise CheckpointError(f"{root}: the tensor {name} is in both {tensors[name][0].name} and "
                                              f"{file.name}; a checkpoint holds each tensor once")
                    header = f.get_slice(name)
                    tensors[name], dtypes[name] = (file, tuple(header.get_shape())), header.get_dtype()
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{file}: not a readable safetensors file ({err})") from None
    not_float = sorted(n for n, d in dtypes.items() if d not in FLOAT_DTYPES)
    if not_float:
        raise CheckpointError(f"{root}: {len(not_float)} tensors are not floating point ({not_float[0]} is "
                              f"{dtypes[not_float[0]]} in {tensors[not_float[0]][0].name}); every weight is F32, F16 "
                              "or BF16")
    return Checkpoint(root, config, layout, tensors)


# Checking and loading
def expected_tensors(config: VideoChatOnlineConfig, layout: str) -> tuple[dict[str, tuple[int, ...]], set[str]]:
    """Names and shapes a checkpoint of this config must hold, and the names it may leave out (tied)."""
    with torch.device("meta"):
        model = VideoChatOnlineModel(config)
    native = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    tied = set(model.all_tied_weights_keys)
    if layout == "original":
        return original_layout.expected_original_shapes(native), tied
    return native, tied


def check_tensors(ckpt: Checkpoint) -> None:
    """Raise a CheckpointError naming every missing, unexpected and mis-shaped tensor (at most 5 of each)."""
    expected, optional = expected_tensors(ckpt.config, ckpt.layout)
    found = {name: shape for name, (_, shape) in ckpt.tensors.items()}
    missing = sorted(set(expected) - set(found) - optional)
    unexpected = sorted(set(found) - set(expected))
    mismatched = [f"{n} is {list(found[n])} in {ckpt.tensors[n][0].name}, the config needs {list(expected[n])}"
                  for n in sorted(set(found) & set(expected)) if found[n] != expected[n]]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if items:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            problems.append(f"{len(items)} {label}: {'; '.join(items[:5])}{more}")
    if problems:
        raise CheckpointError(f"{ckpt.root}: weights do not match the config ({ckpt.layout} layout): "
                              + " | ".join(problems))


def resolve_dtype(dtype: str | torch.dtype | None) -> str | torch.dtype:
    if dtype is None or dtype == "auto":
        return "auto"
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise SettingsError(f"--dtype {dtype}: use one of {', '.join(DTYPES)} or auto")
    return DTYPES[dtype]


def default_attn_implementation(device: str | torch.device) -> str:
    """flash_attention_2 on a GPU when the flash-attn package is installed, sdpa otherwise."""
    from transformers.utils import is_flash_attn_2_available

    return "flash_attention_2" if torch.device(device).type == "cuda" and is_flash_attn_2_available() else "sdpa"


def load_tokenizer(root: Path) -> PreTrainedTokenizerBase:
    if not any((root / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        raise CheckpointError(f"{root}: no tokenizer files (tokenizer.json, tokenizer.model or tokenizer_config.json)")
    try:
        # Never run a checkpoint's code: with trust_remote_code=False transformers neither asks nor runs it.
        return AutoTokenizer.from_pretrained(str(root), trust_remote_code=False)
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as err:
        raise CheckpointError(f"{root}: the tokenizer does not load ({one_line(err)})") from None


def load_pretrained(path_or_id: str | Path, *, dtype: str | torch.dtype | None = None,
                    device: str | torch.device = "cpu", attn_implementation: str | None = None,
                    ) -> tuple[VideoChatOnlineModel, PreTrainedTokenizerBase]:
    """Model and tokenizer from a native or original-layout directory, or a hub id. `dtype`: bf16, fp16, fp32, a
    torch dtype, or None for the checkpoint's own; `attn_implementation`: sdpa, flash_attention_2 or eager (None:
    flash-attention 2 on a GPU when installed, else sdpa). A device, dtype or attention this machine lacks is a
    one-line SettingsError before anything is read."""
    check_device(str(device))
    check_attention(attn_implementation)
    resolve_dtype(dtype)
    ckpt = read_checkpoint(path_or_id)
    check_tensors(ckpt)
    tokenizer = load_tokenizer(ckpt.root)
    config = ckpt.config
    _attach_tokenizer(config, tokenizer, ckpt.root)

    kwargs = dict(dtype=resolve_dtype(dtype), attn_implementation=attn_implementation or default_attn_implementation(device),
                  output_loading_info=True)
    if not is_deepspeed_zero3_enabled():  # under ZeRO-3 DeepSpeed places (and partitions) the weights itself
        kwargs["device_map"] = {"": str(device)}
    if ckpt.layout == "native":
        model, info = VideoChatOnlineModel.from_pretrained(str(ckpt.root), config=config, **kwargs)
    else:
        state = {}
        for file in sorted({file for file, _ in ckpt.tensors.values()}):
            with safe_open(str(file), framework="pt") as f:
                state.update({name: f.get_tensor(name) for name in f.keys()})
        model, info = VideoChatOnlineModel.from_pretrained(
            None, config=config, state_dict=original_layout.from_original(state), **kwargs)
    leftovers = {k: sorted(v) for k, v in info.items() if k != "error_msgs" and v}
    if leftovers or info.get("error_msgs"):
        raise CheckpointError(f"{ckpt.root}: transformers reported loading problems: {leftovers or info['error_msgs']}")
    check_finite(model, ckpt.root)
    return model, tokenizer


def check_finite(model: torch.nn.Module, root: Path) -> None:
    """Fail on a weight holding NaN or infinity (a corrupt or badly converted checkpoint answers nothing useful)."""
    with torch.no_grad():
        bad = [name for name, t in model.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise CheckpointError(f"{root}: {len(bad)} weights hold NaN or infinite values (first: {bad[0]})")


def one_line(err: BaseException) -> str:
    """An exception's message folded onto one line."""
    return " ".join(str(err).split())


def _attach_tokenizer(config: VideoChatOnlineConfig, tokenizer: PreTrainedTokenizerBase, root: Path) -> None:
    """Check that the tokenizer fits the model, and record the <IMG_CONTEXT> id in the config."""
    needed = [IMG_CONTEXT, get_template(config.template).stop_token]
    vocab = tokenizer.get_vocab()
    absent = [tok for tok in needed if tok not in vocab]
    if absent:
        raise CheckpointError(f"{root}: the tokenizer lacks the special tokens {absent}")
    if len(tokenizer) > config.llm_config.vocab_size:
        raise CheckpointError(f"{root}: the tokenizer has {len(tokenizer)} tokens but the LLM embeds only "
                              f"{config.llm_config.vocab_size}")
    image_token_id = vocab[IMG_CONTEXT]
    if config.image_token_id is not None and config.image_token_id != image_token_id:
        raise CheckpointError(f"{root}: config.image_token_id is {config.image_token_id} but the tokenizer's "
                              f"{IMG_CONTEXT} is {image_token_id}")
    config.image_token_id = image_token_id


def save_pretrained(model: VideoChatOnlineModel, tokenizer: PreTrainedTokenizerBase, out_dir: str | Path,
                    max_shard_size: str = "5GB") -> Path:
    """Model (safetensors, sharded past `max_shard_size`), config and tokenizer in this project's layout."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), max_shard_size=max_shard_size)
    tokenizer.save_pretrained(str(out))
    return out


def save_state_dict(config: VideoChatOnlineConfig, tokenizer: PreTrainedTokenizerBase, state: dict[str, torch.Tensor],
                    out_dir: str | Path, max_shard_size: str = "5GB") -> Path:
    """A checkpoint in this project's layout from a full state dict (e.g. gathered from DeepSpeed ZeRO-3 shards)."""
    from huggingface_hub import save_torch_state_dict

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(out))
    # own storage per tensor: DeepSpeed's gathered weights are views into flat buffers, which safetensors refuses
    state = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in state.items()}
    save_torch_state_dict(state, str(out), max_shard_size=max_shard_size)  # shards and index as transformers writes
    tokenizer.save_pretrained(str(out))
    return out
