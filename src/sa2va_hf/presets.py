"""Named Sa2VA configurations.

`OFFICIAL_VARIANTS` holds the real shapes of every checkpoint ByteDance released, as transformers-native configs inside
[`Sa2VAConfig`]: the VLM config is the one transformers converts the base VLM to (`InternVLConfig`, with a Llama text
config for the InternLM2-based models; `Qwen2_5_VLConfig`; `Qwen3VLConfig`), with the vocabulary grown by the five
Sa2VA tokens and the embeddings untied; SAM-2 is SAM 2.0 hiera-large everywhere. Build a model from one on the `meta`
device to check a conversion's key list and shapes without downloading anything.

Where each number comes from is noted beside it. "base" means the base model's own `config.json`;
`[unverified]` marks the few values that could not be read from a public source (none of them changes a tensor shape).

Vocabulary. Sa2VA adds `[SEG]`, `<p>`, `</p>`, `<vp>`, `</vp>` (in that order) to the base tokenizer and resizes the
embeddings to `len(tokenizer)` (`projects/sa2va/models/mllm/*.py`: `resize_token_embeddings(len(tokenizer))`;
`tools/convert_to_hf.py` writes `vocab_size = len(tokenizer)`), so `[SEG]` is the first id after the base tokenizer
and the vocabulary is that id + 5. Base tokenizer lengths:
- InternVL2.5 / InternVL3 with a Qwen2.5 LLM: 151,643 BPE tokens + 22 Qwen2.5 special tokens (151,643-151,664) +
  InternVL's `<img>`, `</img>`, `<IMG_CONTEXT>`, `<quad>`, `</quad>`, `<ref>`, `</ref>`, `<box>`, `</box>`
  (151,665-151,673) = 151,674 (= `llm_config.vocab_size` of InternVL2.5-4B and InternVL3-*; `<IMG_CONTEXT>` = 151,667
  is transformers' `image_token_id`). Cross-check: the `added_tokens.json` this gives is 790 bytes (the size listed for
  InternVL3-2B) and 881 bytes with the Sa2VA tokens (the size listed for ByteDance/Sa2VA-1B and -4B).
- InternVL2.5 with InternLM2.5 (8B, 26B): 92,544 sentencepiece pieces + the nine InternVL tokens (92,544-92,552) =
  92,553 (`llm_config.vocab_size` of InternVL2-2B/InternVL2.5-2B; `<IMG_CONTEXT>` = 92,546). Cross-check:
  `added_tokens.json` of 179 bytes (InternVL2-2B's) and 265 bytes with the Sa2VA tokens (ByteDance/Sa2VA-8B's).
- Qwen2.5-VL: 151,643 + 22 = 151,665 (a LISA-style model on Qwen2.5-VL-3B, SurplusDeficit/UniGR-3B, gets
  `seg_token_idx` 151,665 the same way). Qwen3-VL: 151,643 + 26 (Qwen3 adds `<tool_response>`, `</tool_response>`,
  `<think>`, `</think>`) = 151,669.
"""

import copy
from dataclasses import dataclass, field
from pathlib import Path

from .models.sa2va.configuration_sa2va import Sa2VAConfig
from .models.sa2va.processing_sa2va import SA2VA_SPECIAL_TOKENS


QWEN2_5_TOKENIZER_LENGTH = 151_665
QWEN3_TOKENIZER_LENGTH = 151_669
INTERNVL_QWEN_TOKENIZER_LENGTH = 151_674
INTERNVL_INTERNLM2_TOKENIZER_LENGTH = 92_553


def _internvit_300m() -> dict:
    """InternViT-300M-448px-V2_5 (base `config.json`, in transformers' `InternVLVisionConfig` names)."""
    return {
        "model_type": "internvl_vision",
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "attention_bias": True,  # qkv_bias: true
        "use_qk_norm": False,  # qk_normalization: false
        "norm_type": "layer_norm",
        "layer_norm_eps": 1e-6,
        "hidden_act": "gelu",
        "image_size": [448, 448],
        "patch_size": [14, 14],
    }


def _internvit_6b() -> dict:
    """InternViT-6B-448px-V2_5: the InternViT-6B-448px-V1-5 shape (base `config.json`: 3200 hidden, 12800 MLP,
    45 layers, 25 heads, qk_normalization true, qkv_bias false, no `norm_type` key so the InternViT default RMSNorm).
    """
    return {
        "model_type": "internvl_vision",
        "hidden_size": 3200,
        "intermediate_size": 12800,
        "num_hidden_layers": 45,
        "num_attention_heads": 25,
        "attention_bias": False,
        "use_qk_norm": True,
        "norm_type": "rms_norm",
        "layer_norm_eps": 1e-6,
        "hidden_act": "gelu",
        "image_size": [448, 448],
        "patch_size": [14, 14],
    }


def _qwen2_text(
    *,
    hidden_size: int,
    intermediate_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
    num_key_value_heads: int,
    rope_parameters: dict,
) -> dict:
    """A Qwen2.5 LLM inside InternVL (`llm_config`, model_type `qwen2`), vocabulary grown by the Sa2VA tokens."""
    return {
        "model_type": "qwen2",
        "vocab_size": INTERNVL_QWEN_TOKENIZER_LENGTH + len(SA2VA_SPECIAL_TOKENS),
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": num_attention_heads,
        "num_key_value_heads": num_key_value_heads,
        "hidden_act": "silu",
        "max_position_embeddings": 32768,  # every Qwen2.5 llm_config in InternVL2.5/3
        "rms_norm_eps": 1e-6,  # the Instruct configs (the 14B/32B base models have 1e-5; InternVL3-38B-hf has 1e-6)
        "rope_parameters": rope_parameters,
        "bos_token_id": 151643,
        "eos_token_id": 151645,  # <|im_end|>; transformers' InternVL converter forces it for InternVL3
        "tie_word_embeddings": False,
    }


def _internlm2_as_llama_text(
    *,
    hidden_size: int,
    intermediate_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
    rope_parameters: dict,
) -> dict:
    """An InternLM2.5 chat LLM in its transformers form (Llama, as `convert_internvl_weights_to_hf.py` converts it)."""
    return {
        "model_type": "llama",
        "vocab_size": INTERNVL_INTERNLM2_TOKENIZER_LENGTH + len(SA2VA_SPECIAL_TOKENS),
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": num_attention_heads,
        "num_key_value_heads": 8,  # internlm2_5-7b-chat and internlm2_5-20b-chat
        "hidden_act": "silu",
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-5,
        "rope_parameters": rope_parameters,
        "attention_bias": False,  # InternLM2 `bias: false`
        "mlp_bias": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 2,
        "tie_word_embeddings": False,
    }


def _internvl(vision_config: dict, text_config: dict) -> dict:
    """InternVL2.5 / InternVL3 as `InternVLConfig` (the shape of the `OpenGVLab/InternVL3-*-hf` configs)."""
    internlm2 = text_config["model_type"] == "llama"
    return {
        "model_type": "internvl",
        "vision_config": vision_config,
        "text_config": text_config,
        "image_token_id": 92546 if internlm2 else 151667,  # <IMG_CONTEXT>
        "image_seq_length": 256,  # (448 / 14 * 0.5) ** 2
        "downsample_ratio": 0.5,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -1,  # select_layer -1
        "vision_feature_select_strategy": "default",
        "tie_word_embeddings": False,
    }


def _qwen2_5_vl(
    *,
    hidden_size: int,
    intermediate_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
    num_key_value_heads: int,
) -> dict:
    """Qwen2.5-VL-*-Instruct as `Qwen2_5_VLConfig` (base `config.json`; the vision tower is the same in 3B and 7B:
    the 3B config lists only its width 1280 and `tokens_per_second` 2, the rest are the `Qwen2_5_VLVisionConfig`
    defaults it was saved with: depth 32, MLP 3420, 16 heads, window 112, full attention in blocks 7/15/23/31).
    """
    return {
        "model_type": "qwen2_5_vl",
        "text_config": {
            "model_type": "qwen2_5_vl_text",
            "vocab_size": QWEN2_5_TOKENIZER_LENGTH + len(SA2VA_SPECIAL_TOKENS),
            "hidden_size": hidden_size,
            "intermediate_size": intermediate_size,
            "num_hidden_layers": num_hidden_layers,
            "num_attention_heads": num_attention_heads,
            "num_key_value_heads": num_key_value_heads,
            "hidden_act": "silu",
            "max_position_embeddings": 128000,
            "max_window_layers": 70,
            "rms_norm_eps": 1e-6,
            "use_sliding_window": False,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
            "bos_token_id": 151643,
            "eos_token_id": 151645,
            "tie_word_embeddings": False,
        },
        "vision_config": {
            "model_type": "qwen2_5_vl_vision",
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "hidden_act": "silu",
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
            "tokens_per_second": 2,
            "out_hidden_size": hidden_size,
        },
        "image_token_id": 151655,
        "video_token_id": 151656,
        "vision_start_token_id": 151652,
        "vision_end_token_id": 151653,
        "tie_word_embeddings": False,
    }


def _qwen3_vl(
    *,
    hidden_size: int,
    intermediate_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
) -> dict:
    """Qwen3-VL-*-Instruct as `Qwen3VLConfig` (base `config.json`; the vision tower is the same in 2B and 4B)."""
    return {
        "model_type": "qwen3_vl",
        "text_config": {
            "model_type": "qwen3_vl_text",
            "vocab_size": QWEN3_TOKENIZER_LENGTH + len(SA2VA_SPECIAL_TOKENS),
            "hidden_size": hidden_size,
            "intermediate_size": intermediate_size,
            "num_hidden_layers": num_hidden_layers,
            "num_attention_heads": num_attention_heads,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "hidden_act": "silu",
            "max_position_embeddings": 262144,
            "rms_norm_eps": 1e-6,
            "attention_bias": False,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5000000.0,
                "mrope_section": [24, 20, 20],
                "mrope_interleaved": True,
            },
            "bos_token_id": 151643,
            "eos_token_id": 151645,
            "tie_word_embeddings": False,
        },
        "vision_config": {
            "model_type": "qwen3_vl_vision",
            "depth": 24,
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_heads": 16,
            "hidden_act": "gelu_pytorch_tanh",
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 2304,
            "deepstack_visual_indexes": [5, 11, 17],
            "out_hidden_size": hidden_size,
        },
        "image_token_id": 151655,
        "video_token_id": 151656,
        "vision_start_token_id": 151652,
        "vision_end_token_id": 151653,
        "tie_word_embeddings": False,
    }


# InternVL3 sets dynamic-NTK RoPE (factor 2) on its Qwen2.5 LLMs (an InternVL3-1B config dump, the MindSpeed-MM
# InternVL3-8B/-78B configs, OpenGVLab/InternVL3-38B-hf); InternVL2.5-4B has none (MindSpeed-MM internvl2.5/model_4B).
_INTERNVL3_ROPE = {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1000000.0}
_QWEN2_5_ROPE = {"rope_type": "default", "rope_theta": 1000000.0}


@dataclass(frozen=True)
class OfficialVariant:
    """One released Sa2VA checkpoint: where it lives, what it is built on, and its shapes.

    Args:
        hub_id (`str`):
            The repository on the Hugging Face Hub, e.g. `"ByteDance/Sa2VA-8B"`.
        base_vlm (`str`):
            The VLM the checkpoint was trained from, as a Hub id.
        published_params (`str`):
            The size the Hub shows for the checkpoint (its collection label, e.g. `"4B"`); labels are rounded to
            whole billions.
        chat_template_name (`str` or `None`):
            The official prompt template (`config.template`) for InternVL-family checkpoints; `None` for Qwen-VL ones,
            which use the processor's chat template.
        base_tokenizer_length (`int`):
            `len(tokenizer)` of the base VLM, before the Sa2VA tokens are added; `[SEG]` gets this id.
        vlm_config (`dict`):
            The transformers-native VLM config, vocabulary included.
    """

    hub_id: str
    base_vlm: str
    published_params: str
    chat_template_name: str | None
    base_tokenizer_length: int
    vlm_config: dict = field(repr=False, hash=False)

    @property
    def seg_token_id(self) -> int:
        """Id of `[SEG]`: the first token Sa2VA adds."""
        return self.base_tokenizer_length

    @property
    def published_params_count(self) -> int:
        """`published_params` as a number of parameters (`"4B"` -> 4_000_000_000)."""
        return round(float(self.published_params.removesuffix("B")) * 1e9)

    def config(self) -> Sa2VAConfig:
        """A fresh [`Sa2VAConfig`] with this checkpoint's shapes (SAM 2.0 hiera-large, the default)."""
        return Sa2VAConfig(vlm_config=copy.deepcopy(self.vlm_config), seg_token_id=self.seg_token_id)


# The size labels are those of the Hub collection "Sa2VA Model Zoo"; no model page states an exact parameter count.
# Chat templates: the `template` of the training config each checkpoint was converted from (`projects/llava_sam2/
# configs/sa2va_{1b,4b,8b}.py` at the commit that added the HF converter, `projects/sa2va/configs/sa2va_in30_*.py`);
# 26B has no config in the repository and uses InternLM2's template like 8B [unverified].
# fmt: off
OFFICIAL_VARIANTS: dict[str, OfficialVariant] = {
    "sa2va-1b": OfficialVariant(
        hub_id="ByteDance/Sa2VA-1B",
        base_vlm="OpenGVLab/InternVL2_5-1B",
        published_params="1B",
        chat_template_name="qwen_chat",
        base_tokenizer_length=INTERNVL_QWEN_TOKENIZER_LENGTH,
        # Qwen2.5-0.5B-Instruct (base). InternVL2.5-1B's rope_scaling could not be read [unverified]; none assumed.
        vlm_config=_internvl(_internvit_300m(), _qwen2_text(
            hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
            num_key_value_heads=2, rope_parameters=_QWEN2_5_ROPE,
        )),
    ),
    "sa2va-4b": OfficialVariant(
        hub_id="ByteDance/Sa2VA-4B",
        base_vlm="OpenGVLab/InternVL2_5-4B",
        published_params="4B",
        chat_template_name="phi3_chat",  # sa2va_4b.py; a sa2va_4b_qwen_temp.py with qwen_chat also exists
        base_tokenizer_length=INTERNVL_QWEN_TOKENIZER_LENGTH,
        # Qwen2.5-3B-Instruct (base; MindSpeed-MM internvl2.5/model_4B: 36 layers, 16 heads, 2 KV, no rope scaling)
        vlm_config=_internvl(_internvit_300m(), _qwen2_text(
            hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
            num_key_value_heads=2, rope_parameters=_QWEN2_5_ROPE,
        )),
    ),
    "sa2va-8b": OfficialVariant(
        hub_id="ByteDance/Sa2VA-8B",
        base_vlm="OpenGVLab/InternVL2_5-8B",
        published_params="8B",
        chat_template_name="internlm2_chat",
        base_tokenizer_length=INTERNVL_INTERNLM2_TOKENIZER_LENGTH,
        # internlm2_5-7b-chat (InternVL2-8B llm_config, same LLM: 4096 / 14336 / 32 layers / 32 heads / 8 KV,
        # rope_theta 1e6, dynamic rope factor 2.0)
        vlm_config=_internvl(_internvit_300m(), _internlm2_as_llama_text(
            hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
            rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1000000.0},
        )),
    ),
    "sa2va-26b": OfficialVariant(
        hub_id="ByteDance/Sa2VA-26B",
        base_vlm="OpenGVLab/InternVL2_5-26B",
        published_params="26B",
        chat_template_name="internlm2_chat",
        base_tokenizer_length=INTERNVL_INTERNLM2_TOKENIZER_LENGTH,
        # internlm2_5-20b-chat (base: 6144 / 16384 / 48 layers / 48 heads / 8 KV, rope_theta 5e7, dynamic factor 2.5;
        # that InternVL2.5-26B's llm_config keeps these rope values is [unverified])
        vlm_config=_internvl(_internvit_6b(), _internlm2_as_llama_text(
            hidden_size=6144, intermediate_size=16384, num_hidden_layers=48, num_attention_heads=48,
            rope_parameters={"rope_type": "dynamic", "factor": 2.5, "rope_theta": 50000000.0},
        )),
    ),
    "sa2va-internvl3-2b": OfficialVariant(
        hub_id="ByteDance/Sa2VA-InternVL3-2B",
        base_vlm="OpenGVLab/InternVL3-2B",
        published_params="2B",
        chat_template_name="qwen_chat",
        base_tokenizer_length=INTERNVL_QWEN_TOKENIZER_LENGTH,
        # Qwen2.5-1.5B (base: 1536 / 8960 / 28 layers / 12 heads / 2 KV)
        vlm_config=_internvl(_internvit_300m(), _qwen2_text(
            hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
            num_key_value_heads=2, rope_parameters=_INTERNVL3_ROPE,
        )),
    ),
    "sa2va-internvl3-8b": OfficialVariant(
        hub_id="ByteDance/Sa2VA-InternVL3-8B",
        base_vlm="OpenGVLab/InternVL3-8B",
        published_params="8B",
        chat_template_name="qwen_chat",
        base_tokenizer_length=INTERNVL_QWEN_TOKENIZER_LENGTH,
        # Qwen2.5-7B (MindSpeed-MM internvl3/model_8B.json: 3584 / 18944 / 28 layers / 28 heads / 4 KV)
        vlm_config=_internvl(_internvit_300m(), _qwen2_text(
            hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
            num_key_value_heads=4, rope_parameters=_INTERNVL3_ROPE,
        )),
    ),
    "sa2va-internvl3-14b": OfficialVariant(
        hub_id="ByteDance/Sa2VA-InternVL3-14B",
        base_vlm="OpenGVLab/InternVL3-14B",
        published_params="15B",
        chat_template_name="qwen_chat",
        base_tokenizer_length=INTERNVL_QWEN_TOKENIZER_LENGTH,
        # Qwen2.5-14B (base: 5120 / 13824 / 48 layers / 40 heads / 8 KV)
        vlm_config=_internvl(_internvit_300m(), _qwen2_text(
            hidden_size=5120, intermediate_size=13824, num_hidden_layers=48, num_attention_heads=40,
            num_key_value_heads=8, rope_parameters=_INTERNVL3_ROPE,
        )),
    ),
    "sa2va-qwen2_5-vl-3b": OfficialVariant(
        hub_id="ByteDance/Sa2VA-Qwen2_5-VL-3B",
        base_vlm="Qwen/Qwen2.5-VL-3B-Instruct",
        published_params="4B",
        chat_template_name=None,
        base_tokenizer_length=QWEN2_5_TOKENIZER_LENGTH,
        vlm_config=_qwen2_5_vl(
            hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
            num_key_value_heads=2,
        ),
    ),
    "sa2va-qwen2_5-vl-7b": OfficialVariant(
        hub_id="ByteDance/Sa2VA-Qwen2_5-VL-7B",
        base_vlm="Qwen/Qwen2.5-VL-7B-Instruct",
        published_params="9B",
        chat_template_name=None,
        base_tokenizer_length=QWEN2_5_TOKENIZER_LENGTH,
        vlm_config=_qwen2_5_vl(
            hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
            num_key_value_heads=4,
        ),
    ),
    "sa2va-qwen3-vl-2b": OfficialVariant(
        hub_id="ByteDance/Sa2VA-Qwen3-VL-2B",
        base_vlm="Qwen/Qwen3-VL-2B-Instruct",
        published_params="3B",
        chat_template_name=None,
        base_tokenizer_length=QWEN3_TOKENIZER_LENGTH,
        # Qwen3-1.7B as LLM (2048 / 6144 / 28 layers / 16 heads / 8 KV / head_dim 128; the layer, width and head
        # counts, the vision tower and the 151,669-token tokenizer as listed by a GGUF conversion of Qwen3-VL-2B)
        vlm_config=_qwen3_vl(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16),
    ),
    "sa2va-qwen3-vl-4b": OfficialVariant(
        hub_id="ByteDance/Sa2VA-Qwen3-VL-4B",
        base_vlm="Qwen/Qwen3-VL-4B-Instruct",
        published_params="5B",
        chat_template_name=None,
        base_tokenizer_length=QWEN3_TOKENIZER_LENGTH,
        # Qwen3-VL-4B-Instruct (a config derived from it and its Ollama GGUF metadata: 2560 / 9728 / 36 layers /
        # 32 heads / 8 KV / head_dim 128; vision 24 x 1024, MLP 4096, deepstack [5, 11, 17])
        vlm_config=_qwen3_vl(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32),
    ),
}
# fmt: on


def get_preset_config(name: str) -> Sa2VAConfig:
    """A fresh [`Sa2VAConfig`] for the preset `name`.

    Args:
        name (`str`):
            A key of `OFFICIAL_VARIANTS`, e.g. `"sa2va-internvl3-2b"`.

    Raises:
        ValueError: `name` is not a known preset.
    """
    if name in OFFICIAL_VARIANTS:
        return OFFICIAL_VARIANTS[name].config()
    if name in TINY_PRESETS:
        from .tiny import build_tiny_model

        return build_tiny_model(TINY_PRESETS[name])[0].config
    if name in BUNDLED_PRESETS:
        return Sa2VAConfig.from_pretrained(BUNDLED_PRESETS[name])
    raise ValueError(f"Unknown preset {name!r}; known presets: {', '.join(PRESET_NAMES)}.")


# Tiny seeded models of each family, built offline in seconds (see `sa2va_hf.tiny`).
TINY_PRESETS = {
    "tiny-random-internvl": "internvl",
    "tiny-random-qwen2_5_vl": "qwen2_5_vl",
    "tiny-random-qwen3_vl": "qwen3_vl",
}
# Trained models shipped inside the package (Hub layout, loaded with the package's own classes, no remote code).
# "tiny-shapes": the embedded default, trained on the synthetic shapes task by `scripts/train_tiny_shapes.py`; its
# recipe and held-out scores are in `training_recipe.json` beside the weights.
BUNDLED_PRESETS = {"tiny-shapes": Path(__file__).resolve().parent / "assets" / "tiny-shapes"}
PRESET_NAMES = (*BUNDLED_PRESETS, *TINY_PRESETS, *OFFICIAL_VARIANTS)


def load_preset(name: str, seed: int = 0):
    """`(model, processor)` of a preset that can be built here: the bundled trained `tiny-shapes` model (in eval
    mode; `seed` is ignored) and the seeded `tiny-random-*` models.

    The official variants have real shapes but no weights here: build them with `get_preset_config(name)` on the
    `meta` device, or convert a downloaded checkpoint with `sa2va-hf convert official`.

    Raises:
        ValueError: `name` is unknown, or names an official variant (no weights here).
    """
    if name in BUNDLED_PRESETS:
        from transformers.utils import logging

        from .models.sa2va.modeling_sa2va import Sa2VAForConditionalGeneration
        from .models.sa2va.processing_sa2va import Sa2VAProcessor

        folder = BUNDLED_PRESETS[name]
        show_progress = logging.is_progress_bar_enabled()
        logging.disable_progress_bar()  # a few MB load at once: no "Loading weights" bar in front of the answer
        try:
            model = Sa2VAForConditionalGeneration.from_pretrained(folder).eval()
        finally:
            if show_progress:
                logging.enable_progress_bar()
        return model, Sa2VAProcessor.from_pretrained(folder)
    if name in TINY_PRESETS:
        from .tiny import build_tiny_model

        return build_tiny_model(TINY_PRESETS[name], seed=seed)
    if name in OFFICIAL_VARIANTS:
        raise ValueError(
            f"Preset {name!r} is the shape of {OFFICIAL_VARIANTS[name].hub_id}, whose weights are not bundled; use "
            f"`get_preset_config({name!r})` for its config, or load a converted checkpoint with `AutoModel`."
        )
    raise ValueError(f"Unknown preset {name!r}; known presets: {', '.join(PRESET_NAMES)}.")


__all__ = [
    "BUNDLED_PRESETS",
    "OFFICIAL_VARIANTS",
    "OfficialVariant",
    "PRESET_NAMES",
    "TINY_PRESETS",
    "get_preset_config",
    "load_preset",
]
