"""Convert an official Sa2VA checkpoint (a `ByteDance/Sa2VA-*` Hub folder) into the sa2va-hf format.

```bash
sa2va-hf convert official ./Sa2VA-4B ./Sa2VA-4B-hf --dtype bfloat16
python -m sa2va_hf.conversion.convert_official ./Sa2VA-4B ./Sa2VA-4B-hf
```

The official `config.json` is translated into a [`Sa2VAConfig`] (InternLM2 language models become Llama), then the
safetensors weights (one file, or shards listed in `model.safetensors.index.json`) are read shard by shard: every
tensor is renamed, split or merged by the tables of `key_mapping.py`. Before anything is written the whole result is
checked against the Sa2VA model built on the `meta` device: every official key mapped or dropped with a reason, every
model key filled, every shape equal; otherwise a `ValueError` lists the offending keys. The output is
`model.safetensors` (sharded with an index when larger than `max_shard_size`), `config.json` and the tokenizer files.
Tensors are read one at a time (safetensors maps the shards into memory) and each output file is written as soon as
its tensors are ready, so about one output shard is held in memory. Nothing is downloaded.
"""

import argparse
import dataclasses
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import split_torch_state_dict_into_shards
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm
from transformers import (
    AutoModelForImageTextToText,
    InternVLConfig,
    InternVLVisionConfig,
    LlamaConfig,
    PreTrainedConfig,
    Qwen2_5_VLConfig,
    Qwen2_5_VLTextConfig,
    Qwen2_5_VLVisionConfig,
    Qwen2Config,
    Qwen3Config,
    Qwen3VLConfig,
    Qwen3VLTextConfig,
    Qwen3VLVisionConfig,
    Sam2VideoConfig,
    Sam2VideoModel,
)

from ..models.sa2va.configuration_sa2va import Sa2VAConfig, sam2_hiera_large_config
from .key_mapping import TensorGroup, describe_key_tables, plan_tensor_groups, rename_keys
from .official_processor import build_official_processor, save_config_and_code


logger = logging.getLogger(__name__)

OFFICIAL_MODEL_TYPE = "sa2va_chat"
SEG_TOKEN = "[SEG]"
INTERNVL_IMAGE_TOKEN = "<IMG_CONTEXT>"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
DEFAULT_MAX_SHARD_SIZE = "5GB"

# Tokenizer files of the official Hub folders (Qwen BPE for InternVL-Qwen and Qwen-VL models, sentencepiece for the
# InternLM2 ones) and the Qwen-VL chat template. The converted folder gets our processor instead (tokenizer files,
# `processor_config.json`, chat template).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
)

# Official `Sa2VAChatConfig` fields (InternVL family) that do not reach the converted config, and why. The first five
# are stored by the official config but never read by its `predict_forward`, which hard-codes dynamic tiling with
# 1..12 tiles and a thumbnail (behaviour doc §2.1, §2.3); our processor carries those settings instead.
IGNORED_OFFICIAL_FIELDS = {
    "dynamic_image_size": "ignored by the official code (tiling is always dynamic)",
    "use_thumbnail": "ignored by the official code (the thumbnail is always added)",
    "min_dynamic_patch": "ignored by the official code (hard-coded 1)",
    "max_dynamic_patch": "ignored by the official code (hard-coded 12)",
    "pad2square": "stored, never used by the official code",
    "hidden_size": "a copy of `llm_config.hidden_size`",
    "tie_word_embeddings": "always false: `lm_head` and the embeddings are trained separately",
    "template": "the prompt template name, returned as `OfficialCheckpointConfig.template` for the processor",
    "use_backbone_lora": "0 in released checkpoints (LoRA merged before saving); checked",
    "use_llm_lora": "0 in released checkpoints (LoRA merged before saving); checked",
    "auto_map": "points at the official remote code",
    "architectures": "official class names",
}

# `config.json` files saved by transformers 4.4x hold only the sub-config values that differ from the defaults of the
# sub-config's own class (e.g. the official InternLM2 fixture has no `hidden_act` and its InternViT no `patch_size`).
# The two official remote-code classes have these defaults; the transformers classes (Qwen2, Qwen2.5-VL, ...) keep
# theirs in transformers itself.
INTERNVIT_CONFIG_DEFAULTS = {
    "num_channels": 3,
    "patch_size": 14,
    "image_size": 224,
    "qkv_bias": False,
    "hidden_size": 3200,
    "num_attention_heads": 25,
    "intermediate_size": 12800,
    "qk_normalization": True,
    "num_hidden_layers": 48,
    "hidden_act": "gelu",
    "norm_type": "rms_norm",
    "layer_norm_eps": 1e-6,
    "dropout": 0.0,
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "initializer_factor": 0.1,
}
INTERNLM2_CONFIG_DEFAULTS = {
    "vocab_size": 103168,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": None,
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
    "initializer_range": 0.02,
    "rms_norm_eps": 1e-6,
    "use_cache": True,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "bias": True,
    "rope_theta": 10000,
    "rope_scaling": None,
}

# Official LLM architectures of the InternVL family → the transformers text config they become.
INTERNVL_TEXT_CONFIGS: dict[str, type[PreTrainedConfig]] = {
    "Qwen2ForCausalLM": Qwen2Config,
    "Qwen3ForCausalLM": Qwen3Config,
    "LlamaForCausalLM": LlamaConfig,
    "InternLM2ForCausalLM": LlamaConfig,
}
QWEN_VL_FAMILIES = {
    "qwen2_5_vl": (Qwen2_5_VLConfig, Qwen2_5_VLTextConfig, Qwen2_5_VLVisionConfig),
    "qwen3_vl": (Qwen3VLConfig, Qwen3VLTextConfig, Qwen3VLVisionConfig),
}
# `model_type`s that Qwen-VL configs carry at the top, in `text_config` or in `vision_config` (4.x and 5.x spellings).
QWEN_VL_MODEL_TYPES = {
    "qwen2_5_vl": "qwen2_5_vl",
    "qwen2_5_vl_text": "qwen2_5_vl",
    "qwen2_5_vl_vision": "qwen2_5_vl",
    "qwen3_vl": "qwen3_vl",
    "qwen3_vl_text": "qwen3_vl",
    "qwen3_vl_vision": "qwen3_vl",
}
# Token ids live on the text config for generation, even where the v5 config class does not declare them.
TOKEN_ID_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id")
SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
OUTPUT_DTYPES = ("float32", "bfloat16", "float16")
MAX_LISTED_KEYS = 50


@dataclass(frozen=True)
class OfficialCheckpointConfig:
    """What an official `config.json` translates to.

    Attributes:
        config ([`Sa2VAConfig`]): the sa2va-hf config.
        key_family (`str`): the key-table family of `key_mapping.py` (`"internvl"`, `"internvl_internlm2"`,
            `"qwen2_5_vl"`, `"qwen3_vl"`).
        template (`str` or `None`): the official prompt template (`"qwen_chat"`, `"internlm2_chat"`, `"phi3_chat"`),
            for the processor. Qwen-VL checkpoints store one too, but the official code uses the processor's chat
            template instead.
    """

    config: Sa2VAConfig
    key_family: str
    template: str | None


@dataclass(frozen=True)
class _SourceTensor:
    shard: Path
    shape: tuple[int, ...]
    dtype: torch.dtype


@dataclass(frozen=True)
class _ConversionPlan:
    sources: dict[str, _SourceTensor]  # official key → where it is, in reading order
    dropped: dict[str, str]  # official key → reason
    groups_by_last_source: dict[str, list[TensorGroup]]  # a group is built once its last source has been read
    filename_to_targets: dict[str, list[str]]  # output file → keys, in writing order
    total_size: int


def _config_fields(config_class: type[PreTrainedConfig]) -> set[str]:
    """Fields declared by a config class itself (not the generic ones every `PreTrainedConfig` has)."""
    return {field.name for field in dataclasses.fields(config_class)} - {
        field.name for field in dataclasses.fields(PreTrainedConfig)
    }


def _rope_parameters(values: dict) -> dict | None:
    """v5 `rope_parameters` from a 4.x `rope_theta` + `rope_scaling` (whose type key is `type` or `rope_type`)."""
    if values.get("rope_parameters"):
        return dict(values["rope_parameters"])
    if "rope_theta" not in values and not values.get("rope_scaling"):
        return None
    scaling = dict(values.get("rope_scaling") or {})
    legacy_type = scaling.pop("type", None)
    parameters = {"rope_type": scaling.pop("rope_type", None) or legacy_type or "default", **scaling}
    if "rope_theta" in values:
        parameters["rope_theta"] = values["rope_theta"]
    return parameters


def _sub_config_kwargs(config_class: type[PreTrainedConfig], values: dict, where: str) -> dict:
    """Keep the fields `config_class` declares (plus token ids and RoPE); log what is left out."""
    known = _config_fields(config_class)
    kwargs = {key: value for key, value in values.items() if key in known or key in TOKEN_ID_FIELDS}
    if "rope_parameters" in known and (rope := _rope_parameters(values)) is not None:
        kwargs["rope_parameters"] = rope
    left_out = sorted(set(values) - set(kwargs) - {"rope_theta", "rope_scaling", "model_type"})
    if left_out:
        logger.debug("%s: not carried over to %s: %s", where, config_class.__name__, ", ".join(left_out))
    return kwargs


def _internvit_to_vision_config(vision: dict) -> InternVLVisionConfig:
    """Official InternViT config (`intern_vit_6b`, official defaults filled in) → `InternVLVisionConfig`.

    `drop_path_rate` (stochastic depth, training only) and `use_flash_attn` have no equivalent; `initializer_factor`
    is InternViT's layer-scale init value.
    """
    renamed = {
        "qkv_bias": "attention_bias",
        "qk_normalization": "use_qk_norm",
        "dropout": "projection_dropout",
        "initializer_factor": "layer_scale_init_value",
    }
    values = {renamed.get(key, key): value for key, value in vision.items()}
    kwargs = _sub_config_kwargs(InternVLVisionConfig, values, "vision_config")
    # InternViT has no final LayerNorm and keeps the CLS position embedding: no mean pooling, absolute positions.
    kwargs.update(use_mean_pooling=True, use_absolute_position_embeddings=True, use_mask_token=False)
    return InternVLVisionConfig(**kwargs)


def _internlm2_to_llama_config(llm: dict) -> LlamaConfig:
    """Official InternLM2 config → `LlamaConfig` (the layers are the same once `wqkv` is split).

    RoPE: InternLM2.5 uses dynamic NTK scaling (`{"type": "dynamic", "factor": 2.0}`), which becomes transformers'
    `rope_type="dynamic"` with the same base formula. The official rotary embedding is stateful: after a sequence
    longer than `max_position_embeddings` it keeps the stretched base for every later, shorter call, whereas
    transformers' dynamic RoPE goes back to the original base below that length. A first call, or any call on a
    fresh official model, is identical.
    """
    llm = {**INTERNLM2_CONFIG_DEFAULTS, **llm}
    num_attention_heads = llm["num_attention_heads"]
    values = {
        **llm,
        "num_key_value_heads": llm["num_key_value_heads"] or num_attention_heads,
        "attention_bias": llm["bias"],  # InternLM2's `bias` covers wqkv and wo, i.e. q, k, v and o
        "mlp_bias": False,
        "head_dim": llm["hidden_size"] // num_attention_heads,
        "tie_word_embeddings": False,
    }
    return LlamaConfig(**_sub_config_kwargs(LlamaConfig, values, "llm_config (InternLM2)"))


def _internvl_vlm_config(official: dict, image_token_id: int) -> tuple[InternVLConfig, str]:
    """Official InternVL-family config → (`InternVLConfig`, key family)."""
    llm = official["llm_config"]
    architecture = (llm.get("architectures") or [None])[0]
    if architecture not in INTERNVL_TEXT_CONFIGS:
        raise ValueError(
            f"`llm_config.architectures` is {llm.get('architectures')!r}; supported language models: "
            f"{', '.join(INTERNVL_TEXT_CONFIGS)}."
        )
    if official.get("ps_version", "v1") != "v2":
        raise ValueError(
            f"`ps_version` is {official.get('ps_version', 'v1')!r}; only 'v2' (the pixel shuffle of every released "
            "checkpoint and of transformers' InternVL) is supported."
        )
    for field in ("use_backbone_lora", "use_llm_lora"):
        if official.get(field, 0):
            raise ValueError(f"`{field}` is {official[field]}: merge the LoRA weights into the checkpoint first.")
    vision = {**INTERNVIT_CONFIG_DEFAULTS, **official["vision_config"]}
    vision_config = _internvit_to_vision_config(vision)
    image_size = official.get("force_image_size") or vision["image_size"]
    if image_size != vision["image_size"]:
        raise ValueError(
            f"`force_image_size` ({image_size}) differs from `vision_config.image_size` ({vision['image_size']}); "
            "re-sized position embeddings are not supported."
        )
    if architecture == "InternLM2ForCausalLM":
        text_config, key_family = _internlm2_to_llama_config(llm), "internvl_internlm2"
    else:
        text_class = INTERNVL_TEXT_CONFIGS[architecture]
        values = {**llm, "tie_word_embeddings": False}
        text_config, key_family = text_class(**_sub_config_kwargs(text_class, values, "llm_config")), "internvl"
    downsample_ratio = official.get("downsample_ratio", 0.5)
    patch_size = vision["patch_size"]
    vlm_config = InternVLConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_id=image_token_id,
        image_seq_length=int((image_size // patch_size) ** 2 * downsample_ratio**2),
        downsample_ratio=downsample_ratio,
        projector_hidden_act="gelu",
        vision_feature_layer=official.get("select_layer", -1),
        vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )
    return vlm_config, key_family


def _qwen_vl_family(official: dict) -> str | None:
    for model_type in (
        official.get("text_config", {}).get("model_type"),
        official.get("vision_config", {}).get("model_type"),
    ):
        if model_type in QWEN_VL_MODEL_TYPES:
            return QWEN_VL_MODEL_TYPES[model_type]
    return None


def _qwen_vl_vlm_config(official: dict, family: str) -> PreTrainedConfig:
    """Official Qwen-VL-family config (a full `Qwen2_5_VLConfig` / `Qwen3VLConfig` + `template`) → the v5 config."""
    config_class, text_class, vision_class = QWEN_VL_FAMILIES[family]
    top_level = _config_fields(config_class)
    # Configs saved before transformers 4.52 keep the text fields at the top level.
    text = official.get("text_config") or {key: value for key, value in official.items() if key not in top_level}
    exclude = {"text_config", "vision_config", "tie_word_embeddings"}
    kwargs = {key: value for key, value in official.items() if key in top_level - exclude}
    return config_class(
        **kwargs,
        text_config=_sub_config_kwargs(text_class, text, "text_config"),
        vision_config=_sub_config_kwargs(vision_class, official["vision_config"], "vision_config"),
        # The official converter unties them: `embed_tokens` and `lm_head` were trained separately.
        tie_word_embeddings=False,
    )


def translate_official_config(
    official_config: dict,
    *,
    seg_token_id: int,
    image_token_id: int | None = None,
    sam2_config: dict | Sam2VideoConfig | None = None,
) -> OfficialCheckpointConfig:
    """Translate an official Sa2VA `config.json` into a [`Sa2VAConfig`].

    Args:
        official_config (`dict`): the official `config.json` (`model_type` `"sa2va_chat"`).
        seg_token_id (`int`): id of `[SEG]` in the checkpoint's tokenizer.
        image_token_id (`int`, *optional*): id of `<IMG_CONTEXT>`; required for the InternVL family (Qwen-VL
            configs carry their own image token id).
        sam2_config (`dict` or `Sam2VideoConfig`, *optional*): SAM-2 sizes. The official config has none (its code
            hard-codes them), so this defaults to SAM 2.0 hiera-large, the SAM-2 of every released checkpoint.

    Returns:
        [`OfficialCheckpointConfig`]: the config, the key family and the prompt template name.

    Raises:
        `ValueError`: if the config is not an official Sa2VA config or uses a variant this converter cannot express.
    """
    model_type = official_config.get("model_type")
    if model_type != OFFICIAL_MODEL_TYPE:
        hint = " It already is a sa2va-hf checkpoint." if model_type == Sa2VAConfig.model_type else ""
        raise ValueError(
            f"config.json has model_type {model_type!r}; official Sa2VA checkpoints have {OFFICIAL_MODEL_TYPE!r}."
            + hint
        )
    template = official_config.get("template")
    template = template.replace("-", "_") if template else None
    if "llm_config" in official_config:
        if image_token_id is None:
            raise ValueError(f"InternVL-family checkpoints need `image_token_id` (the id of {INTERNVL_IMAGE_TOKEN}).")
        if template is None:
            raise ValueError("config.json has no `template`; InternVL-family checkpoints need their prompt template.")
        vlm_config, key_family = _internvl_vlm_config(official_config, image_token_id)
        for field in sorted(set(official_config) & set(IGNORED_OFFICIAL_FIELDS)):
            logger.debug("config.json: `%s` %s.", field, IGNORED_OFFICIAL_FIELDS[field])
    elif (key_family := _qwen_vl_family(official_config)) is not None:
        vlm_config = _qwen_vl_vlm_config(official_config, key_family)
    else:
        raise ValueError(
            "config.json is neither an InternVL-family Sa2VA config (`vision_config` + `llm_config`) nor a "
            "Qwen2.5-VL / Qwen3-VL one (`text_config` + `vision_config` of model_type qwen2_5_vl / qwen3_vl)."
        )
    config = Sa2VAConfig(
        vlm_config=vlm_config,
        sam2_config=sam2_hiera_large_config() if sam2_config is None else sam2_config,
        seg_token_id=seg_token_id,
        architectures=["Sa2VAForConditionalGeneration"],
    )
    return OfficialCheckpointConfig(config=config, key_family=key_family, template=template)


def read_added_token_ids(src_dir: str | Path, tokens: Iterable[str]) -> dict[str, int]:
    """Ids of added tokens, read from the tokenizer files without loading the tokenizer.

    Looks in `tokenizer_config.json` (`added_tokens_decoder`), `added_tokens.json` and `tokenizer.json`
    (`added_tokens`), so it also works for the InternLM2 tokenizer, whose class is official remote code.

    Args:
        src_dir (`str` or `Path`): the checkpoint folder.
        tokens (`Iterable[str]`): the tokens to look up, e.g. `["[SEG]", "<IMG_CONTEXT>"]`.

    Returns:
        `dict[str, int]`: the tokens found → their ids (tokens not found are absent).
    """
    src_dir, wanted, found = Path(src_dir), set(tokens), {}
    tokenizer_config = src_dir / "tokenizer_config.json"
    if tokenizer_config.is_file():
        decoder = json.loads(tokenizer_config.read_text()).get("added_tokens_decoder", {})
        found |= {entry["content"]: int(index) for index, entry in decoder.items() if entry["content"] in wanted}
    added_tokens = src_dir / "added_tokens.json"
    if added_tokens.is_file():
        found |= {token: index for token, index in json.loads(added_tokens.read_text()).items() if token in wanted}
    tokenizer_json = src_dir / "tokenizer.json"
    if wanted - set(found) and tokenizer_json.is_file():
        entries = json.loads(tokenizer_json.read_text()).get("added_tokens", [])
        found |= {entry["content"]: entry["id"] for entry in entries if entry["content"] in wanted - set(found)}
    return found


def load_official_config(
    src_dir: str | Path, *, sam2_config: dict | Sam2VideoConfig | None = None
) -> OfficialCheckpointConfig:
    """Read an official checkpoint folder's `config.json` and tokenizer files and translate them.

    Args:
        src_dir (`str` or `Path`): the official checkpoint folder.
        sam2_config (`dict` or `Sam2VideoConfig`, *optional*): see [`translate_official_config`].

    Returns:
        [`OfficialCheckpointConfig`]: the config, the key family and the prompt template name.

    Raises:
        `FileNotFoundError`: if `config.json` is missing.
        `ValueError`: if the config is not an official Sa2VA one or the tokenizer lacks `[SEG]` (or `<IMG_CONTEXT>`).
    """
    src_dir = Path(src_dir)
    config_file = src_dir / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"No config.json in {src_dir}: is this an official Sa2VA checkpoint folder?")
    official = json.loads(config_file.read_text())
    token_ids = read_added_token_ids(src_dir, (SEG_TOKEN, INTERNVL_IMAGE_TOKEN))
    if SEG_TOKEN not in token_ids:
        raise ValueError(
            f"The tokenizer files in {src_dir} define no {SEG_TOKEN} token (looked in tokenizer_config.json, "
            "added_tokens.json, tokenizer.json); Sa2VA checkpoints ship their tokenizer."
        )
    if "llm_config" in official and INTERNVL_IMAGE_TOKEN not in token_ids:
        raise ValueError(f"The tokenizer files in {src_dir} define no {INTERNVL_IMAGE_TOKEN} token.")
    return translate_official_config(
        official,
        seg_token_id=token_ids[SEG_TOKEN],
        image_token_id=token_ids.get(INTERNVL_IMAGE_TOKEN),
        sam2_config=sam2_config,
    )


def find_checkpoint_shards(src_dir: str | Path) -> dict[Path, dict[str, tuple[tuple[int, ...], str]]]:
    """The safetensors files of a checkpoint and, per file, its tensors' shapes and dtypes (headers only).

    Args:
        src_dir (`str` or `Path`): the checkpoint folder, with `model.safetensors` or `model.safetensors.index.json`
            and its shards.

    Returns:
        `dict[Path, dict[str, tuple[tuple[int, ...], str]]]`: file → {key: (shape, safetensors dtype)}, files in
        index order, keys sorted.

    Raises:
        `ValueError`: if there are no safetensors weights, a shard listed in the index is missing, or the index and
            the shards disagree on which keys they hold.
    """
    src_dir = Path(src_dir)
    index_file = src_dir / WEIGHTS_INDEX_NAME
    if index_file.is_file():
        weight_map = json.loads(index_file.read_text())["weight_map"]
        files = list(dict.fromkeys(weight_map.values()))
        missing = [name for name in files if not (src_dir / name).is_file()]
        if missing:
            raise ValueError(
                f"{len(missing)} checkpoint shard(s) listed in {index_file} are missing: {', '.join(missing)}."
            )
    elif (src_dir / WEIGHTS_NAME).is_file():
        weight_map, files = None, [WEIGHTS_NAME]
    else:
        other = sorted(path.name for pattern in ("*.bin", "*.pt", "*.pth") for path in src_dir.glob(pattern))
        found = f" (found {', '.join(other)}: only safetensors weights are supported)" if other else ""
        raise ValueError(f"No {WEIGHTS_NAME} or {WEIGHTS_INDEX_NAME} in {src_dir}{found}.")
    shards, seen = {}, {}
    for name in files:
        path = src_dir / name
        with safe_open(path, framework="pt") as handle:
            shards[path] = {
                key: (tuple(handle.get_slice(key).get_shape()), handle.get_slice(key).get_dtype())
                for key in sorted(handle.keys())
            }
        for key in shards[path]:
            if key in seen:
                raise ValueError(f"Tensor {key!r} is stored twice: in {seen[key]} and in {name}.")
            seen[key] = name
    if weight_map is not None:
        disagree = sorted(key for key in set(weight_map) | set(seen) if weight_map.get(key) != seen.get(key))
        if disagree:
            where = [f"{key}: index {weight_map.get(key)}, shards {seen.get(key)}" for key in disagree]
            raise ValueError(
                f"{index_file.name} and the shards disagree on {len(disagree)} tensor(s):\n{list_keys(where)}"
            )
    return shards


def expected_state_dict_shapes(config: Sa2VAConfig) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of a [`Sa2VAForConditionalGeneration`] state dict, computed on the `meta` device.

    The model is `vlm` (`AutoModelForImageTextToText.from_config(config.vlm_config)`), `sam2`
    (`Sam2VideoModel(config.sam2_config)`) and `seg_projector` (Linear → ReLU → Linear).

    Args:
        config ([`Sa2VAConfig`]): the model config.

    Returns:
        `dict[str, tuple[int, ...]]`: state-dict key → tensor shape.
    """
    with torch.device("meta"):
        vlm = AutoModelForImageTextToText.from_config(config.vlm_config)
        sam2 = Sam2VideoModel(config.sam2_config)
    shapes = {f"vlm.{key}": tuple(tensor.shape) for key, tensor in vlm.state_dict().items()}
    shapes |= {f"sam2.{key}": tuple(tensor.shape) for key, tensor in sam2.state_dict().items()}
    hidden_size, seg_hidden_size = config.text_config.hidden_size, config.seg_hidden_size
    shapes |= {
        "seg_projector.0.weight": (hidden_size, hidden_size),
        "seg_projector.0.bias": (hidden_size,),
        "seg_projector.2.weight": (seg_hidden_size, hidden_size),
        "seg_projector.2.bias": (seg_hidden_size,),
    }
    return shapes


def list_keys(items: list[str]) -> str:
    shown = "\n".join(f"    {item}" for item in items[:MAX_LISTED_KEYS])
    more = f"\n    ... and {len(items) - MAX_LISTED_KEYS} more" if len(items) > MAX_LISTED_KEYS else ""
    return shown + more


def check_official_layout(
    source_shapes: dict[str, tuple[int, ...]], config: Sa2VAConfig, key_family: str
) -> tuple[list[TensorGroup], dict[str, str]]:
    """Check, on shapes alone, that official tensors convert one-to-one into a Sa2VA model built from `config`.

    Every official key must be renamed by the family's key tables or dropped with a reason, every key of the model
    ([`expected_state_dict_shapes`]) must be filled exactly once, and every shape must be equal (fused tensors are
    split or merged on the `meta` device to get their shapes).

    Args:
        source_shapes (`dict[str, tuple[int, ...]]`): official key → shape.
        config ([`Sa2VAConfig`]): the config of the converted model.
        key_family (`str`): one of `key_mapping.KEY_FAMILIES`.

    Returns:
        `tuple[list[TensorGroup], dict[str, str]]`: the tensor groups that build the model's tensors, and the dropped
        official keys with their reasons.

    Raises:
        `ValueError`: listing every unknown official key, converted key the model does not have, model key left
            empty or filled twice, shape mismatch and fused tensor that cannot be split.
    """
    renamed, dropped, unknown = rename_keys(source_shapes, key_family)
    text_config = config.text_config
    groups = plan_tensor_groups(
        renamed,
        num_attention_heads=text_config.num_attention_heads,
        num_key_value_heads=text_config.num_key_value_heads,
    )
    expected = expected_state_dict_shapes(config)
    produced: dict[str, list[tuple[tuple[str, ...], tuple[int, ...]]]] = {}
    surgery_errors = []
    for group in groups:
        try:
            outputs = group.build(*(torch.empty(source_shapes[key], device="meta") for key in group.sources))
        except ValueError as error:
            surgery_errors.append(f"{' + '.join(group.sources)}: {error}")
            continue
        for target, tensor in zip(group.targets, outputs):
            produced.setdefault(target, []).append((group.sources, tuple(tensor.shape)))

    def source_names(made: list[tuple[tuple[str, ...], tuple[int, ...]]]) -> str:
        return " and ".join(" + ".join(sources) for sources, _ in made)

    unexpected = [f"{source_names(made)} -> {target}" for target, made in produced.items() if target not in expected]
    duplicated = [f"{target} <- {source_names(made)}" for target, made in produced.items() if len(made) > 1]
    missing = list(set(expected) - set(produced))
    mismatched = [
        f"{source_names(made)} -> {target}: checkpoint {made[0][1]}, model {expected[target]}"
        for target, made in produced.items()
        if target in expected and made[0][1] != expected[target]
    ]
    problems = [
        (unknown, f"official key(s) match no key table of family {key_family!r} and are not in DROPPED_KEYS"),
        (unexpected, "converted key(s) do not exist in the Sa2VA model"),
        (duplicated, "model key(s) would be written by more than one official key"),
        (missing, "model key(s) are not filled by the checkpoint"),
        (mismatched, "shape mismatch(es)"),
        (surgery_errors, "fused tensor(s) cannot be split"),
    ]
    if any(items for items, _ in problems):
        sections = "\n".join(
            f"  {len(items)} {title}:\n{list_keys(sorted(items))}" for items, title in problems if items
        )
        raise ValueError(
            f"the official weights do not match the Sa2VA model of this config (family {key_family!r}: "
            f"{describe_key_tables(key_family)}).\n{sections}\nCheck that config.json belongs to these weights and that "
            "`sam2_config` gives the checkpoint's SAM-2 sizes (the default is SAM 2.0 hiera-large)."
        )
    return groups, dropped


def _plan_conversion(
    shards: dict[Path, dict[str, tuple[tuple[int, ...], str]]],
    translated: OfficialCheckpointConfig,
    *,
    dtype: torch.dtype | None,
    max_shard_size: int | str,
) -> _ConversionPlan:
    """Check the whole conversion on shapes and decide which output file each converted tensor goes to."""
    sources = {}
    for path, tensors in shards.items():
        for key, (shape, stored_dtype) in tensors.items():
            if stored_dtype not in SAFETENSORS_DTYPES:
                raise ValueError(f"Tensor {key!r} in {path.name} has the unsupported dtype {stored_dtype}.")
            sources[key] = _SourceTensor(path, shape, SAFETENSORS_DTYPES[stored_dtype])
    source_shapes = {key: source.shape for key, source in sources.items()}
    groups, dropped = check_official_layout(source_shapes, translated.config, translated.key_family)

    # A group is built once its last source has been read; its tensors are written in that order.
    position = {key: index for index, key in enumerate(sources)}
    groups_by_last_source: dict[str, list[TensorGroup]] = {}
    ordered_targets = {}
    for group in sorted(groups, key=lambda group: max(position[key] for key in group.sources)):
        groups_by_last_source.setdefault(max(group.sources, key=position.__getitem__), []).append(group)
        source_dtype = sources[group.sources[0]].dtype
        target_dtype = dtype if dtype is not None and source_dtype.is_floating_point else source_dtype
        outputs = group.build(*(torch.empty(source_shapes[key], device="meta") for key in group.sources))
        for target, tensor in zip(group.targets, outputs):
            ordered_targets[target] = tensor.to(target_dtype)
    split = split_torch_state_dict_into_shards(
        ordered_targets,
        filename_pattern=WEIGHTS_NAME.replace(".safetensors", "{suffix}.safetensors"),
        max_shard_size=max_shard_size,
    )
    return _ConversionPlan(
        sources=sources,
        dropped=dropped,
        groups_by_last_source=groups_by_last_source,
        filename_to_targets=split.filename_to_tensors,
        total_size=split.metadata["total_size"],
    )


def _write_weights(plan: _ConversionPlan, dst_dir: Path, *, dtype: torch.dtype | None, show_progress: bool) -> None:
    """Stream the source shards, build every target tensor and write each output file as soon as it is complete."""
    files = list(plan.filename_to_targets)
    waiting, ready, next_file = {}, {}, 0
    keys_by_shard: dict[Path, list[str]] = {}
    for key, source in plan.sources.items():
        keys_by_shard.setdefault(source.shard, []).append(key)
    with tqdm(total=len(plan.sources), desc="Converting", unit="tensor", disable=not show_progress) as progress:
        for shard, keys in keys_by_shard.items():
            progress.set_postfix_str(shard.name)
            with safe_open(shard, framework="pt") as handle:
                for key in keys:
                    progress.update()
                    if key in plan.dropped:
                        continue
                    waiting[key] = handle.get_tensor(key)
                    for group in plan.groups_by_last_source.get(key, ()):
                        outputs = group.build(*(waiting.pop(source) for source in group.sources))
                        for target, tensor in zip(group.targets, outputs):
                            ready[target] = (
                                tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor
                            )
                    while next_file < len(files) and all(
                        key in ready for key in plan.filename_to_targets[files[next_file]]
                    ):
                        name = files[next_file]
                        tensors = {target: ready.pop(target) for target in plan.filename_to_targets[name]}
                        save_file(tensors, dst_dir / name, metadata={"format": "pt"})
                        next_file += 1
    if len(files) > 1:
        weight_map = {target: name for name, targets in plan.filename_to_targets.items() for target in targets}
        index = {"metadata": {"total_size": plan.total_size}, "weight_map": dict(sorted(weight_map.items()))}
        (dst_dir / WEIGHTS_INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in OUTPUT_DTYPES:
        raise ValueError(f"`dtype` must be one of {', '.join(OUTPUT_DTYPES)}, got {dtype!r}.")
    return getattr(torch, dtype)


def convert_official_checkpoint(
    src_dir: str | Path,
    dst_dir: str | Path,
    *,
    sam2_config: dict | Sam2VideoConfig | None = None,
    dtype: torch.dtype | str | None = None,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    show_progress: bool = True,
) -> Path:
    """Convert an official Sa2VA checkpoint folder into a sa2va-hf folder.

    Args:
        src_dir (`str` or `Path`): the official folder (`config.json`, safetensors weights, tokenizer files).
        dst_dir (`str` or `Path`): the output folder; created if needed, must not already hold weights.
        sam2_config (`dict` or `Sam2VideoConfig`, *optional*): SAM-2 sizes of the checkpoint; defaults to SAM 2.0
            hiera-large, the SAM-2 of every released checkpoint.
        dtype (`torch.dtype` or `str`, *optional*): dtype of the written floating-point tensors (`"bfloat16"`
            halves the size of the float32 official uploads); defaults to the checkpoint's.
        max_shard_size (`int` or `str`, *optional*, defaults to `"5GB"`): largest output file before the weights
            are sharded with an index.
        show_progress (`bool`, *optional*, defaults to `True`): show a progress bar.

    Returns:
        `Path`: `dst_dir`.

    Raises:
        `FileNotFoundError`: `config.json` is missing.
        `FileExistsError`: `dst_dir` already holds weights.
        `ValueError`: not an official Sa2VA checkpoint, a shard is missing, or the weights do not match the config
            (unknown keys, unfilled model keys, wrong shapes; all offending keys are listed).
    """
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    torch_dtype = resolve_dtype(dtype)
    existing = sorted(dst_dir.glob("model*.safetensors*")) if dst_dir.is_dir() else []
    if existing:
        raise FileExistsError(f"{dst_dir} already holds weights ({existing[0].name}); choose an empty folder.")
    translated = load_official_config(src_dir, sam2_config=sam2_config)
    shards = find_checkpoint_shards(src_dir)
    try:
        plan = _plan_conversion(shards, translated, dtype=torch_dtype, max_shard_size=max_shard_size)
    except ValueError as error:
        raise ValueError(f"Cannot convert {src_dir}: {error}") from None
    for key, reason in plan.dropped.items():
        logger.info("Dropped %s: %s.", key, reason)

    dst_dir.mkdir(parents=True, exist_ok=True)
    _write_weights(plan, dst_dir, dtype=torch_dtype, show_progress=show_progress)
    config = translated.config
    floating = {source.dtype for source in plan.sources.values() if source.dtype.is_floating_point}
    config.dtype = torch_dtype or (floating.pop() if len(floating) == 1 else None)
    save_config_and_code(config, dst_dir)
    processor = build_official_processor(config, src_dir, translated.template, translated.key_family)
    processor.save_pretrained(dst_dir)
    logger.info(
        "Converted %s (%s, template %s): %d tensors -> %d in %d file(s); copied %s.",
        src_dir,
        translated.key_family,
        translated.template,
        len(plan.sources),
        sum(len(targets) for targets in plan.filename_to_targets.values()),
        len(plan.filename_to_targets),
        "the processor",
    )
    return dst_dir


def load_sam2_config_argument(value: str) -> dict:
    path = Path(value)
    return json.loads(path.read_text() if path.is_file() else value)


def main(argv: list[str] | None = None) -> int:
    """Command line: `SRC DST [--dtype bfloat16] [--sam2-config JSON] [--max-shard-size 5GB] [--push-to-hub REPO_ID]`.

    Returns:
        `int`: 0 on success, 1 when the checkpoint cannot be converted (the reason is logged).
    """
    parser = argparse.ArgumentParser(
        prog="sa2va-hf convert official",
        description="Convert an official ByteDance Sa2VA checkpoint folder into the sa2va-hf format.",
    )
    parser.add_argument("src", metavar="SRC", help="official checkpoint folder (config.json, safetensors, tokenizer)")
    parser.add_argument("dst", metavar="DST", help="output folder (must not already hold weights)")
    parser.add_argument(
        "--dtype", choices=OUTPUT_DTYPES, default=None, help="dtype of the written weights (default: the checkpoint's)"
    )
    parser.add_argument(
        "--sam2-config",
        metavar="JSON",
        default=None,
        help="Sam2VideoConfig of the checkpoint's SAM-2, as a JSON file or inline JSON (default: SAM 2.0 hiera-large)",
    )
    parser.add_argument("--max-shard-size", default=DEFAULT_MAX_SHARD_SIZE, help="largest output file (default: 5GB)")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    parser.add_argument(
        "--push-to-hub",
        metavar="REPO_ID",
        default=None,
        help="after converting, upload DST to this Hub repository with a model card (`sa2va-hf push`)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        sam2_config = None if args.sam2_config is None else load_sam2_config_argument(args.sam2_config)
        convert_official_checkpoint(
            args.src,
            args.dst,
            sam2_config=sam2_config,
            dtype=args.dtype,
            max_shard_size=args.max_shard_size,
            show_progress=not args.no_progress,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        logger.error("%s", error)
        return 1
    if args.push_to_hub is not None:
        from .push import match_official_variant, push_to_hub

        try:
            push_to_hub(args.dst, args.push_to_hub, variant_name=match_official_variant(args.dst))
        except (ValueError, OSError) as error:  # OSError includes the Hub's HTTP errors
            logger.error("%s", error)
            return 1
    return 0


__all__ = [
    "OfficialCheckpointConfig",
    "check_official_layout",
    "convert_official_checkpoint",
    "expected_state_dict_shapes",
    "find_checkpoint_shards",
    "load_official_config",
    "main",
    "read_added_token_ids",
    "translate_official_config",
]


if __name__ == "__main__":
    raise SystemExit(main())
