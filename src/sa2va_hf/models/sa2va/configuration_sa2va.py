"""Sa2VA configuration: a vision-language model config, a SAM-2 video config and the settings that join them."""

from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec


# The VLM families Sa2VA is released with, keyed by the `model_type` of their transformers config.
SA2VA_VLM_MODEL_TYPES = ("internvl", "qwen2_5_vl", "qwen3_vl")
KEY_FRAME_STRATEGIES = ("first", "uniform")  # see `video_io_sa2va.select_key_frames`


def sam2_hiera_large_config() -> dict:
    """SAM 2.0 hiera-large settings, as every released Sa2VA checkpoint uses them (`sam2_hiera_l.yaml`).

    SAM 2.0 (unlike 2.1) has no temporal encoding of object pointers and no occlusion embedding.
    """
    return {
        "model_type": "sam2_video",
        "vision_config": {
            "model_type": "sam2_vision_model",
            "backbone_config": {
                "model_type": "sam2_hiera_det_model",
                "hidden_size": 144,
                "num_attention_heads": 2,
                "embed_dim_per_stage": [144, 288, 576, 1152],
                "num_attention_heads_per_stage": [2, 4, 8, 16],
                "blocks_per_stage": [2, 6, 36, 4],
                "global_attention_blocks": [23, 33, 43],
                "window_size_per_stage": [8, 4, 16, 8],
                "window_positional_embedding_background_size": [7, 7],
            },
            "backbone_channel_list": [1152, 576, 288, 144],
            "fpn_hidden_size": 256,
            "fpn_top_down_levels": [2, 3],
        },
        "enable_temporal_pos_encoding_for_object_pointers": False,
        "enable_occlusion_spatial_embedding": False,
    }


@strict
class Sa2VAConfig(PreTrainedConfig):
    r"""
    Configuration of [`Sa2VAForConditionalGeneration`]: a vision-language model that writes `[SEG]` tokens and a
    SAM-2 video model that turns each `[SEG]` into a mask per frame. The defaults describe the layout of
    `ByteDance/Sa2VA-InternVL3-2B` (InternVL with a Qwen2 LLM, SAM 2.0 hiera-large).

    Args:
        vlm_config (`dict` or `PreTrainedConfig`, *optional*):
            Config of the vision-language model: an `InternVLConfig`, `Qwen2_5_VLConfig` or `Qwen3VLConfig`, picked by
            its `model_type`. Defaults to InternVL.
        sam2_config (`dict` or `Sam2VideoConfig`, *optional*):
            Config of SAM-2. Defaults to SAM 2.0 hiera-large ([`sam2_hiera_large_config`]).
        seg_token_id (`int`, *optional*):
            Id of the `[SEG]` token in the tokenizer. The processor checks that it agrees with its tokenizer.
        num_key_frames (`int`, *optional*, defaults to 5):
            Number of video frames shown to the VLM; SAM-2 segments them with the `[SEG]` prompt and tracks the rest.
        key_frame_strategy (`str`, *optional*, defaults to `"first"`):
            `"first"` (official: frames `0..num_key_frames-1`) or `"uniform"` (spread over the video).
        mask_threshold (`float`, *optional*, defaults to 0.0):
            A pixel is in the mask when its mask logit is greater than this (0.0 is sigmoid > 0.5).
        blank_absent_objects (`bool`, *optional*, defaults to `False`):
            Stock SAM-2 blanks a frame's mask when it judges the object absent. The official Sa2VA code keeps the mask;
            set `True` for the stock behaviour.
        mask_loss_weight (`float`, *optional*, defaults to 2.0):
            Training: weight of the sigmoid cross-entropy between SAM-2's low-resolution mask logits and the target.
        dice_loss_weight (`float`, *optional*, defaults to 0.5):
            Training: weight of the dice loss on the same points.
        train_num_points (`int`, *optional*, defaults to 12544):
            Training: points sampled per mask for both mask losses (PointRend-style, as the official recipe).
        oversample_ratio (`float`, *optional*, defaults to 3.0):
            Training: candidate points drawn per sampled point before picking the most uncertain ones.
        importance_sample_ratio (`float`, *optional*, defaults to 0.75):
            Training: share of the sampled points taken where the prediction is most uncertain (the rest uniform).
        mask_target_size (`int`, *optional*):
            Training: side of the square grid the target masks are resized to (nearest) before the points are
            sampled. `None` (official) uses the grid of SAM-2's low-resolution logits, which moves every target edge
            to a cell border; a finer grid keeps where inside a cell the edge falls, so the upsampled masks learn it.
    """

    model_type = "sa2va"
    sub_configs_defaults = {
        "vlm_config": SubConfigSpec(config_class=AutoConfig, model_type="internvl"),
        "sam2_config": SubConfigSpec(
            config_class=AutoConfig, model_type="sam2_video", init_kwargs=sam2_hiera_large_config()
        ),
    }

    vlm_config: dict | PreTrainedConfig | None = None
    sam2_config: dict | PreTrainedConfig | None = None
    seg_token_id: int | None = None
    num_key_frames: int = 5
    key_frame_strategy: Literal["first", "uniform"] = "first"
    mask_threshold: float = 0.0
    blank_absent_objects: bool = False
    mask_loss_weight: float = 2.0
    dice_loss_weight: float = 0.5
    train_num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    mask_target_size: int | None = None
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.vlm_config.model_type not in SA2VA_VLM_MODEL_TYPES:
            raise ValueError(
                f"`vlm_config` has model_type {self.vlm_config.model_type!r}; Sa2VA supports "
                f"{', '.join(SA2VA_VLM_MODEL_TYPES)}. InternLM2-based checkpoints are converted to InternVL with a "
                "Llama text config (`sa2va-hf convert official`)."
            )
        if self.sam2_config.model_type != "sam2_video":
            raise ValueError(
                f"`sam2_config` has model_type {self.sam2_config.model_type!r}; it must be a `Sam2VideoConfig` "
                "(model_type 'sam2_video')."
            )
        if self.num_key_frames < 1:
            raise ValueError(f"`num_key_frames` must be at least 1, got {self.num_key_frames}.")
        if self.key_frame_strategy not in KEY_FRAME_STRATEGIES:
            raise ValueError(
                f"`key_frame_strategy` must be one of {', '.join(KEY_FRAME_STRATEGIES)}, got {self.key_frame_strategy!r}."
            )
        if self.train_num_points < 1 or self.oversample_ratio < 1 or not 0 <= self.importance_sample_ratio <= 1:
            raise ValueError(
                "Mask-loss sampling needs `train_num_points` >= 1, `oversample_ratio` >= 1 and "
                f"0 <= `importance_sample_ratio` <= 1; got {self.train_num_points}, {self.oversample_ratio}, "
                f"{self.importance_sample_ratio}."
            )
        if self.mask_target_size is not None and self.mask_target_size < 1:
            raise ValueError(
                f"`mask_target_size` must be None (SAM-2's logit grid) or a side of at least 1, got "
                f"{self.mask_target_size}."
            )
        text_config = self.text_config
        if self.seg_token_id is not None and not 0 <= self.seg_token_id < text_config.vocab_size:
            raise ValueError(
                f"`seg_token_id` {self.seg_token_id} is outside the language model's vocabulary "
                f"(vocab_size {text_config.vocab_size})."
            )

    @property
    def vlm_family(self) -> str:
        """The VLM family (`"internvl"`, `"qwen2_5_vl"` or `"qwen3_vl"`): where the families differ, code reads this."""
        return self.vlm_config.model_type

    @property
    def text_config(self) -> PreTrainedConfig:
        """Config of the language model inside the VLM."""
        return self.vlm_config.get_text_config()

    @property
    def seg_hidden_size(self) -> int:
        """Width of a projected `[SEG]` prompt: SAM-2's prompt-encoder hidden size."""
        return self.sam2_config.prompt_encoder_config.hidden_size


__all__ = ["Sa2VAConfig", "sam2_hiera_large_config"]
