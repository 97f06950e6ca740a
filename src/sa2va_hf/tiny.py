"""Tiny, seeded Sa2VA models of each VLM family, built offline in seconds (tests, demos, examples).

They have the real layout (every module of the released checkpoints) with the smallest sizes that run: a byte-level
tokenizer made from scratch, a 2-layer LLM, a 1-layer vision tower and a SAM-2 with the real 1024-px input.
"""

import torch
from tokenizers.pre_tokenizers import ByteLevel
from transformers import Qwen2Tokenizer

from .models.sa2va.chat_templates_sa2va import get_chat_template
from .models.sa2va.configuration_sa2va import Sa2VAConfig
from .models.sa2va.image_processing_sa2va import Sa2VAImageProcessor
from .models.sa2va.modeling_sa2va import Sa2VAForConditionalGeneration
from .models.sa2va.processing_sa2va import SA2VA_SPECIAL_TOKENS, Sa2VAProcessor


TINY_FAMILIES = ("internvl", "qwen2_5_vl", "qwen3_vl")

# Special tokens of each family's tokenizer, in id order after the 256 byte tokens.
# fmt: off
_FAMILY_TOKENS = {
    "internvl":   ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>"),
    "qwen2_5_vl": ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                   "<|image_pad|>", "<|video_pad|>"),
}
_FAMILY_TOKENS["qwen3_vl"] = _FAMILY_TOKENS["qwen2_5_vl"]

# The Qwen2.5-VL / Qwen3-VL instruct template without the default system prompt (Sa2VA trained without one).
QWEN_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# The smallest SAM-2 with every module of hiera-large (sizes as in the official tiny fixtures), input 1024 px.
TINY_SAM2_CONFIG = {
    "model_type": "sam2_video",
    "vision_config": {
        "model_type": "sam2_vision_model",
        "backbone_config": {
            "model_type": "sam2_hiera_det_model",
            "hidden_size": 8,
            "num_attention_heads": 1,
            "embed_dim_per_stage": [8, 16, 32, 64],
            "num_attention_heads_per_stage": [1, 2, 4, 8],
            "blocks_per_stage": [1, 1, 2, 1],
            "global_attention_blocks": [3],
            "window_size_per_stage": [8, 4, 16, 8],
            "window_positional_embedding_background_size": [7, 7],
        },
        "backbone_channel_list": [64, 32, 16, 8],
        "fpn_hidden_size": 128,
        "fpn_top_down_levels": [2, 3],
    },
    "prompt_encoder_config": {"hidden_size": 128},
    "mask_decoder_config": {"hidden_size": 128, "mlp_dim": 64, "num_attention_heads": 2, "iou_head_hidden_dim": 32},
    "memory_attention_hidden_size": 128,
    "memory_attention_num_layers": 2,
    "memory_attention_feed_forward_hidden_size": 64,
    "memory_encoder_hidden_size": 128,
    "memory_encoder_output_channels": 64,
    "mask_downsampler_embed_dim": 128,
    "memory_fuser_embed_dim": 128,
    "memory_fuser_intermediate_dim": 512,
    "enable_temporal_pos_encoding_for_object_pointers": False,
    "enable_occlusion_spatial_embedding": False,
}
# fmt: on

_TINY_TEXT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
}


def build_tiny_tokenizer(family: str, sa2va_tokens: bool = True) -> Qwen2Tokenizer:
    """A byte-level tokenizer (256 byte tokens, no merges) with the family's special tokens and, unless
    `sa2va_tokens=False` (a VLM's tokenizer before Sa2VA), Sa2VA's."""
    vocab = {char: i for i, char in enumerate(sorted(ByteLevel.alphabet()))}
    special = (*_FAMILY_TOKENS[family], *(SA2VA_SPECIAL_TOKENS if sa2va_tokens else ()))
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=None, bos_token=None, pad_token=None, eos_token=None)
    tokenizer.add_tokens(list(special), special_tokens=True)
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|endoftext|>"
    return tokenizer


def tiny_vlm_config(family: str, vocab_size: int, token_ids: dict[str, int]) -> dict:
    """The VLM config of a tiny model of `family`, with image-token ids from its tokenizer."""
    text = dict(_TINY_TEXT, vocab_size=vocab_size, bos_token_id=None, eos_token_id=token_ids["<|im_end|>"])
    if family == "internvl":
        return {
            "model_type": "internvl",
            "vision_config": {
                "hidden_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 64,
                "image_size": [224, 224],
                "patch_size": [14, 14],
            },
            "text_config": dict(text, model_type="qwen2"),
            "image_token_id": token_ids["<IMG_CONTEXT>"],
            "image_seq_length": 64,
            "downsample_ratio": 0.5,
            "tie_word_embeddings": False,
        }
    qwen_ids = {
        "image_token_id": token_ids["<|image_pad|>"],
        "video_token_id": token_ids["<|video_pad|>"],
        "vision_start_token_id": token_ids["<|vision_start|>"],
        "vision_end_token_id": token_ids["<|vision_end|>"],
        "tie_word_embeddings": False,
    }
    if family == "qwen2_5_vl":
        vision = {
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 32,
            "patch_size": 14,
            "window_size": 56,
            "fullatt_block_indexes": [1],
        }
        rope = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}
        return {"model_type": "qwen2_5_vl", "vision_config": vision, **qwen_ids,
                "text_config": dict(text, model_type="qwen2_5_vl_text", rope_parameters=rope)}  # fmt: skip
    vision = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": 32,
        "patch_size": 16,
        "num_position_embeddings": 16,
        "deepstack_visual_indexes": [0],
    }
    rope = {"rope_type": "default", "rope_theta": 5e6, "mrope_section": [2, 3, 3], "mrope_interleaved": True}
    return {"model_type": "qwen3_vl", "vision_config": vision, **qwen_ids,
            "text_config": dict(text, model_type="qwen3_vl_text", head_dim=16, rope_parameters=rope)}  # fmt: skip


def build_tiny_processor(family: str) -> Sa2VAProcessor:
    """The processor of a tiny model: tiny tokenizer, the family's image view (224-px InternVL tiles, ≤ 4 tiles)."""
    if family not in TINY_FAMILIES:
        raise ValueError(f"Unknown family {family!r}; tiny models exist for {', '.join(TINY_FAMILIES)}.")
    tokenizer = build_tiny_tokenizer(family)
    if family == "internvl":
        image_processor = Sa2VAImageProcessor(vlm_family=family, tile_size=224, max_tiles=4)
        chat_template, stop_words = get_chat_template("qwen_chat")
    else:
        image_processor = Sa2VAImageProcessor(vlm_family=family, min_pixels=56 * 56, max_pixels=224 * 224)
        chat_template, stop_words = QWEN_VL_CHAT_TEMPLATE, ("<|im_end|>",)
    tokenizer.chat_template = chat_template
    return Sa2VAProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=chat_template,
        stop_words=list(stop_words),
        image_seq_length=64,
    )


def build_tiny_model(family: str, seed: int = 0) -> tuple[Sa2VAForConditionalGeneration, Sa2VAProcessor]:
    """A tiny Sa2VA of `family` with seeded random weights, and its processor."""
    processor = build_tiny_processor(family)
    tokenizer = processor.tokenizer
    token_ids = {token: tokenizer.convert_tokens_to_ids(token) for token in tokenizer.get_added_vocab()}
    config = Sa2VAConfig(
        vlm_config=tiny_vlm_config(family, len(tokenizer), token_ids),
        sam2_config=TINY_SAM2_CONFIG,
        seg_token_id=token_ids["[SEG]"],
    )
    torch.manual_seed(seed)
    model = Sa2VAForConditionalGeneration(config).eval()
    return model, processor


__all__ = ["TINY_FAMILIES", "build_tiny_model", "build_tiny_processor", "build_tiny_tokenizer"]
