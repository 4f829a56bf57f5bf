"""Configuration of the VideoChat-Online model: the only place architecture settings live.

The model is InternVL-style (docs/design.md, "The model"):

    frame -> vision tower (InternViT layout) -> drop CLS -> pixel shuffle -> feature grid
          -> memory -> projector ``mlp1`` -> visual tokens in the LLM prompt -> causal LLM
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import CONFIG_MAPPING, AutoConfig, InternVLVisionConfig, PreTrainedConfig

# InternVL's chat() default system message, used when a caller gives none.
INTERNVL_SYSTEM_MESSAGE = (
    "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"
)


@strict
class VideoChatOnlineConfig(PreTrainedConfig):
    r"""
    vision_config (`InternVLVisionConfig` or `dict`):
        The vision tower, in transformers' `InternVLVisionModel` terms (InternViT-300M for the published
        4B model: 24 layers, width 1024, 14px patches, 448px input).
    llm_config (`PreTrainedConfig` or `dict`):
        The causal language model, any architecture transformers builds with `AutoModelForCausalLM`
        (Phi-3 for the published 4B model; Qwen2 and Llama for other InternVL sizes). Its `model_type`
        picks the config class.
    downsample_ratio (`float`, defaults to 0.5):
        Pixel-shuffle factor: a 32x32 patch grid of width C becomes a 16x16 grid of width 4C.
    ps_version (`str`, defaults to `"v2"`):
        Pixel-shuffle variant. `"v2"` (every published InternVL2 model) permutes back to row-major order;
        `"v1"` leaves the grid transposed.
    select_layer (`int`, defaults to -1):
        Which vision-tower hidden state feeds the projector (-1: the last layer).
    template (`str`, defaults to `"phi3-chat"`):
        Conversation template name (see `videochat_online.conversation.TEMPLATES`).
    system_message (`str`):
        System message used when a caller gives none.
    max_dynamic_patch (`int`, defaults to 12):
        Most 448px tiles a still image is cut into (video frames always use one tile).
    min_dynamic_patch (`int`, defaults to 1):
        Fewest tiles a still image is cut into.
    use_thumbnail (`bool`, defaults to `True`):
        Whether a tiled image also gets a whole-image thumbnail tile.
    vision_drop_path_rate (`float`, defaults to 0.0):
        Stochastic depth of the vision tower while training: layer i of N skips its residual branches with
        probability `rate * i / (N - 1)` (InternViT's schedule; the published recipe trains with 0.1). No
        effect at inference. The original layout keeps it as `vision_config.drop_path_rate`.
    memory (`dict`, *optional*):
        The memory the model was trained with, as `videochat_online.memory.MemorySettings.to_dict` writes it
        (mode and every policy's options). The streaming CLI, the evaluation's project preset, the lmms-eval
        model and the demo start from it when no option overrides it; None: the project's defaults.
    fps (`float`, *optional*):
        Frames per second of video the model was trained to watch (the published recipe: 1); the default
        sampling rate of every inference path. None: the project's default (2).
    image_token_id (`int`, *optional*):
        Id of `<IMG_CONTEXT>` in the model's tokenizer: the prompt positions that visual tokens fill.
        Filled in from the tokenizer by `load_pretrained` when a checkpoint does not record it.
    """

    model_type = "videochat_online"
    sub_configs = {"vision_config": InternVLVisionConfig, "llm_config": AutoConfig}
    default_llm_type = "phi3"  # the published 4B model's LLM, used when llm_config names no model_type

    vision_config: dict | PreTrainedConfig | None = None
    llm_config: dict | PreTrainedConfig | None = None
    downsample_ratio: float = 0.5
    ps_version: str = "v2"
    select_layer: int = -1
    template: str = "phi3-chat"
    system_message: str = INTERNVL_SYSTEM_MESSAGE
    max_dynamic_patch: int = 12
    min_dynamic_patch: int = 1
    use_thumbnail: bool = True
    vision_drop_path_rate: float = 0.0
    memory: dict | None = None
    fps: float | None = None
    image_token_id: int | None = None
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        # Each field checked before any module is built: a bad value is a ValueError naming the field.
        for name in ("vision_config", "llm_config"):
            if not isinstance(getattr(self, name), (dict, PreTrainedConfig, type(None))):
                raise ValueError(f"{name} must be an object of settings, got {type(getattr(self, name)).__name__}")
        if isinstance(self.downsample_ratio, bool) or not isinstance(self.downsample_ratio, (int, float)) \
                or not 0 < self.downsample_ratio <= 1:
            raise ValueError(f"downsample_ratio must be a number in (0, 1], got {self.downsample_ratio!r}")
        if not 1 <= self.min_dynamic_patch <= self.max_dynamic_patch:
            raise ValueError(f"need 1 <= min_dynamic_patch <= max_dynamic_patch, got {self.min_dynamic_patch} and "
                             f"{self.max_dynamic_patch}")
        if self.memory is not None and not isinstance(self.memory, dict):
            raise ValueError(f"memory must be an object of memory settings, got {type(self.memory).__name__}")
        # Sub-configs given as dicts (as read from config.json) become config objects. This is the plain
        # pattern every transformers 5.x release supports (newer releases add helpers for it).
        if isinstance(self.vision_config, dict):
            self.vision_config = InternVLVisionConfig(**self.vision_config)
        elif self.vision_config is None:
            self.vision_config = InternVLVisionConfig()
        if isinstance(self.llm_config, dict):
            llm = dict(self.llm_config)
            model_type = llm.pop("model_type", None) or self.default_llm_type
            if model_type not in CONFIG_MAPPING:
                raise ValueError(f"llm_config: unknown model_type {model_type!r}")
            self.llm_config = CONFIG_MAPPING[model_type](**llm)
        elif self.llm_config is None:
            self.llm_config = CONFIG_MAPPING[self.default_llm_type]()
        super().__post_init__(**kwargs)
        if not 0.0 <= self.vision_drop_path_rate < 1.0:
            raise ValueError(f"vision_drop_path_rate must be in [0, 1), got {self.vision_drop_path_rate}")
        if self.fps is not None and not (isinstance(self.fps, (int, float)) and 0 < self.fps < float("inf")):
            raise ValueError(f"fps must be a finite number > 0, got {self.fps!r}")
        if self.ps_version not in ("v1", "v2"):
            raise ValueError(f"ps_version must be 'v1' or 'v2', got {self.ps_version!r}")
        if not 1 <= self.vit_patch_size <= self.tile_size:
            raise ValueError(f"vision_config: patch_size {self.vit_patch_size} must be >= 1 and at most the image "
                             f"size {self.tile_size}")
        depth = int(self.vision_config.num_hidden_layers)
        if not -(depth + 1) <= self.select_layer <= depth:
            raise ValueError(f"select_layer {self.select_layer} is beyond the vision tower's {depth} layers (use "
                             f"-{depth + 1}..{depth}; -1: the last)")
        patches = self.tile_size // self.vit_patch_size
        if (patches * self.downsample_ratio) % 1 != 0 or (1 / self.downsample_ratio) % 1 != 0:
            raise ValueError(
                f"downsample_ratio {self.downsample_ratio} does not divide the {patches}x{patches} patch grid"
            )

    # Derived sizes: read-only views of the fields above.
    @property
    def tile_size(self) -> int:
        """Side of one input tile in pixels (448 for the published model)."""
        return int(self.vision_config.image_size[0])

    @property
    def vit_patch_size(self) -> int:
        """Side of one vision-tower patch in pixels (14)."""
        return int(self.vision_config.patch_size[0])

    @property
    def grid_size(self) -> int:
        """Side of a frame's feature grid after pixel shuffle (16 for the published model)."""
        return int(self.tile_size // self.vit_patch_size * self.downsample_ratio)

    @property
    def tokens_per_tile(self) -> int:
        """Visual tokens of one full-resolution tile or frame (256 for the published model)."""
        return self.grid_size**2

    @property
    def feature_dim(self) -> int:
        """Width of a feature-grid cell, the projector's input (4096 for the published model)."""
        return int(self.vision_config.hidden_size * round(1 / self.downsample_ratio) ** 2)

    @property
    def llm_hidden_size(self) -> int:
        """Width of the LLM, the projector's output."""
        return int(self.llm_config.hidden_size)

    @property
    def hidden_size(self) -> int:
        """The model's width as libraries read it (DeepSpeed sizes its "auto" ZeRO-3 buckets from it): the LLM's."""
        return self.llm_hidden_size
