"""The real-size presets: every official Sa2VA checkpoint built on the `meta` device, counted, and checked against
its published size and against a parameter count worked out by hand from the architecture."""

import importlib.util
from functools import cache

import pytest
import torch
import transformers
from torch import nn

from sa2va_hf.models.sa2va.processing_sa2va import SA2VA_SPECIAL_TOKENS
from sa2va_hf.presets import OFFICIAL_VARIANTS, OfficialVariant, get_preset_config


# transformers' `Sam2VideoModel` with SAM 2.0 hiera-large settings (Meta publishes 224.4M for sam2_hiera_large).
SAM2_HIERA_LARGE_PARAMS = 224_430_130
SEG_PROMPT_SIZE = 256
PARTS = ("vision", "projector", "llm", "sam2", "seg_projector")


def _has_sa2va_model() -> bool:
    return importlib.util.find_spec("sa2va_hf.models.sa2va.modeling_sa2va") is not None


def _build_on_meta(variant: OfficialVariant) -> tuple[nn.Module, nn.Module, nn.Module]:
    """The VLM, SAM-2 and `[SEG]` projector of `variant`, as `Sa2VAForConditionalGeneration` holds them."""
    config = variant.config()
    with torch.device("meta"):
        if _has_sa2va_model():
            from sa2va_hf.models.sa2va.modeling_sa2va import Sa2VAForConditionalGeneration

            model = Sa2VAForConditionalGeneration(config)
            return model.vlm, model.sam2, model.seg_projector
        hidden_size = config.text_config.hidden_size
        seg_projector = nn.Sequential(
            nn.Linear(hidden_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, SEG_PROMPT_SIZE)
        )
        vlm = transformers.AutoModelForImageTextToText.from_config(config.vlm_config)
        return vlm, transformers.Sam2VideoModel(config.sam2_config), seg_projector


def _vlm_part(name: str) -> str:
    """Which part of the VLM a parameter belongs to, by its name."""
    if name.startswith(("model.language_model.", "lm_head.")):
        return "llm"
    if name.startswith("model.multi_modal_projector.") or (name.startswith("model.visual.") and "merger" in name):
        return "projector"
    if name.startswith(("model.vision_tower.", "model.visual.")):
        return "vision"
    raise AssertionError(f"parameter {name!r} belongs to no known part of the VLM")


@cache
def _measured_parts(name: str) -> dict[str, int]:
    vlm, sam2, seg_projector = _build_on_meta(OFFICIAL_VARIANTS[name])
    assert vlm.get_input_embeddings().weight is not vlm.get_output_embeddings().weight, "embeddings are tied"
    parts = dict.fromkeys(PARTS, 0)
    for param_name, param in vlm.named_parameters():
        parts[_vlm_part(param_name)] += param.numel()
    parts["sam2"] = sum(param.numel() for param in sam2.parameters())
    parts["seg_projector"] = sum(param.numel() for param in seg_projector.parameters())
    return parts


def _decoder_params(text_config, *, qkv_bias: bool, qk_norm: bool) -> int:
    """Embeddings + decoder layers + final norm + an untied LM head."""
    hidden, vocab = text_config.hidden_size, text_config.vocab_size
    head_dim = getattr(text_config, "head_dim", None) or hidden // text_config.num_attention_heads
    q_size = text_config.num_attention_heads * head_dim
    kv_size = text_config.num_key_value_heads * head_dim
    attention = 2 * hidden * q_size + 2 * hidden * kv_size
    attention += (q_size + 2 * kv_size) * qkv_bias + 2 * head_dim * qk_norm
    layer = attention + 3 * hidden * text_config.intermediate_size + 2 * hidden
    return 2 * vocab * hidden + text_config.num_hidden_layers * layer + hidden


def _internvl_vision_params(vision_config) -> int:
    """InternViT: class token, patch and position embeddings, then pre-norm layers with layer scale."""
    width, mlp = vision_config.hidden_size, vision_config.intermediate_size
    patch_h, patch_w = vision_config.patch_size
    num_patches = (vision_config.image_size[0] // patch_h) * (vision_config.image_size[1] // patch_w)
    embeddings = width + (vision_config.num_channels * patch_h * patch_w * width + width) + (num_patches + 1) * width
    norm = 2 * width if vision_config.norm_type == "layer_norm" else width
    attention = 4 * width * width + width  # q, k, v, projection (the projection always has a bias)
    attention += 3 * width * vision_config.attention_bias + 2 * width * vision_config.use_qk_norm
    layer = attention + 2 * width + 2 * norm + (2 * width * mlp + mlp + width)
    return embeddings + vision_config.num_hidden_layers * layer


def _patch_merger_params(width: int, out_size: int, norm_size: int, norm_has_bias: bool) -> int:
    """Qwen-VL patch merger: a norm, then Linear(4 width, 4 width) -> GELU -> Linear(4 width, out_size)."""
    merged = 4 * width
    return norm_size * (1 + norm_has_bias) + (merged * merged + merged) + (merged * out_size + out_size)


def _expected_parts(variant: OfficialVariant) -> dict[str, int]:
    """Every part's parameter count, from the config and the published architectures."""
    config = variant.config()
    vlm_config, text_config = config.vlm_config, config.text_config
    hidden = text_config.hidden_size
    if config.vlm_family == "internvl":
        vision_config = vlm_config.vision_config
        vision = _internvl_vision_params(vision_config)
        merged = vision_config.hidden_size * int(1 / vlm_config.downsample_ratio) ** 2
        projector = 2 * merged + (merged * hidden + hidden) + (hidden * hidden + hidden)  # LayerNorm, Linear, Linear
        llm = _decoder_params(text_config, qkv_bias=text_config.model_type == "qwen2", qk_norm=False)
    elif config.vlm_family == "qwen2_5_vl":
        vision_config = vlm_config.vision_config
        width, mlp = vision_config.hidden_size, vision_config.intermediate_size
        patch = vision_config.in_channels * vision_config.temporal_patch_size * vision_config.patch_size**2 * width
        attention = (3 * width * width + 3 * width) + (width * width + width)  # fused qkv, projection
        layer = 2 * width + attention + (3 * width * mlp + 2 * mlp + width)  # RMSNorms, gated MLP with biases
        vision = patch + vision_config.depth * layer
        projector = _patch_merger_params(width, vision_config.out_hidden_size, width, norm_has_bias=False)
        llm = _decoder_params(text_config, qkv_bias=True, qk_norm=False)
    else:
        vision_config = vlm_config.vision_config
        width, mlp = vision_config.hidden_size, vision_config.intermediate_size
        patch = vision_config.in_channels * vision_config.temporal_patch_size * vision_config.patch_size**2 * width
        position = vision_config.num_position_embeddings * width
        attention = (3 * width * width + 3 * width) + (width * width + width)  # fused qkv, projection
        layer = 4 * width + attention + (2 * width * mlp + mlp + width)  # LayerNorms, plain MLP
        vision = patch + width + position + vision_config.depth * layer  # the patch embedding has a bias
        out_size = vision_config.out_hidden_size
        projector = _patch_merger_params(width, out_size, width, norm_has_bias=True)
        deepstack = _patch_merger_params(width, out_size, 4 * width, norm_has_bias=True)
        projector += len(vision_config.deepstack_visual_indexes) * deepstack
        llm = _decoder_params(text_config, qkv_bias=False, qk_norm=True)
    seg_projector = (hidden * hidden + hidden) + (hidden * SEG_PROMPT_SIZE + SEG_PROMPT_SIZE)
    return {
        "vision": vision,
        "projector": projector,
        "llm": llm,
        "sam2": SAM2_HIERA_LARGE_PARAMS,
        "seg_projector": seg_projector,
    }


VARIANT_NAMES = list(OFFICIAL_VARIANTS)


def test_all_official_checkpoints_are_listed():
    assert len(OFFICIAL_VARIANTS) == 11
    assert {variant.hub_id for variant in OFFICIAL_VARIANTS.values()} == {
        "ByteDance/Sa2VA-1B",
        "ByteDance/Sa2VA-4B",
        "ByteDance/Sa2VA-8B",
        "ByteDance/Sa2VA-26B",
        "ByteDance/Sa2VA-InternVL3-2B",
        "ByteDance/Sa2VA-InternVL3-8B",
        "ByteDance/Sa2VA-InternVL3-14B",
        "ByteDance/Sa2VA-Qwen2_5-VL-3B",
        "ByteDance/Sa2VA-Qwen2_5-VL-7B",
        "ByteDance/Sa2VA-Qwen3-VL-2B",
        "ByteDance/Sa2VA-Qwen3-VL-4B",
    }


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_config_vocabulary_and_untied_embeddings(name):
    variant = OFFICIAL_VARIANTS[name]
    config = get_preset_config(name)
    assert config.seg_token_id == variant.base_tokenizer_length
    assert config.text_config.vocab_size == variant.base_tokenizer_length + len(SA2VA_SPECIAL_TOKENS)
    assert not config.tie_word_embeddings
    assert not config.vlm_config.tie_word_embeddings
    assert not config.text_config.tie_word_embeddings
    assert config.sam2_config.vision_config.backbone_config.blocks_per_stage == [2, 6, 36, 4]
    assert (variant.chat_template_name is None) == (config.vlm_family != "internvl")


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_config_round_trips_through_dict(name):
    config = get_preset_config(name)
    reloaded = type(config).from_dict(config.to_dict())
    assert reloaded.to_diff_dict() == config.to_diff_dict()


def test_config_is_fresh_each_time():
    first = get_preset_config("sa2va-1b")
    first.text_config.vocab_size = 7
    assert get_preset_config("sa2va-1b").text_config.vocab_size == 151_679


def test_unknown_preset_lists_known_names():
    with pytest.raises(ValueError, match=r"Unknown preset 'sa2va-3b'.*sa2va-1b.*sa2va-qwen3-vl-4b"):
        get_preset_config("sa2va-3b")


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_parameter_count_is_the_sum_of_its_parts(name):
    assert _measured_parts(name) == _expected_parts(OFFICIAL_VARIANTS[name])


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_parameter_count_rounds_to_published_size(name):
    # The Hub shows whole-billion labels and no exact count for these checkpoints, so the count must round to the
    # label: within half a billion of it.
    variant = OFFICIAL_VARIANTS[name]
    total = sum(_measured_parts(name).values())
    assert abs(total - variant.published_params_count) < 0.5e9, f"{name}: {total:,} vs {variant.published_params}"
