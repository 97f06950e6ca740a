"""Assemble a fresh, untrained Sa2VA from a transformers vision-language model and SAM-2 weights.

```bash
sa2va-hf build --vlm ./InternVL3-2B-hf --sam2 ./sam2_hiera_large.pt ./Sa2VA-InternVL3-2B-init
sa2va-hf build --vlm ./Qwen2.5-VL-3B-Instruct --sam2 ./sam2-hiera-large-hf ./Sa2VA-Qwen2.5-VL-3B-init --dtype bfloat16
```

The parts:
- **VLM**: a transformers folder of `InternVLForConditionalGeneration` (`OpenGVLab/InternVL3-2B-hf` layout),
  `Qwen2_5_VLForConditionalGeneration` or `Qwen3VLForConditionalGeneration`, with its tokenizer files. It is loaded
  with `from_pretrained` (weights streamed into a model built on `meta`, one copy in memory).
- **SAM-2**: either a transformers folder (`Sam2VideoModel` or `Sam2Model` checkpoint with its `config.json`; a
  `Sam2Model` folder must also hold the memory weights, which `Sam2Model` itself ignores on load) or Meta's original
  `.pt` (`{"model": state_dict}` with facebookresearch names, renamed by the SAM-2 table of `key_mapping.py`). A `.pt`
  has no config: `sam2_config` gives the sizes (default SAM 2.0 hiera-large) and the SAM 2.0 / 2.1 flags are set from
  the keys (2.1 adds `obj_ptr_tpos_proj` and `no_obj_embed_spatial`). Every released Sa2VA uses SAM 2.0; a 2.1 SAM-2 is
  built as given, with a warning.

What the builder adds, as the official training code does before training starts:
- the tokens `[SEG]`, `<p>`, `</p>`, `<vp>`, `</vp>` (`add_tokens(..., special_tokens=True)`, those missing only);
- the language model's embeddings and `lm_head` resized to `len(tokenizer)`, untied first when the VLM ties them (Sa2VA
  trains the two separately). New rows come from transformers' `resize_token_embeddings` default (`mean_resizing=True`:
  drawn from a normal with the old rows' mean and 1e-9 times their covariance, i.e. the mean up to noise ~3e-5 of the
  rows' spread), seeded. A vocabulary larger than the tokenizer (Qwen pads it to 151,936) shrinks to `len(tokenizer)`,
  as the released Sa2VA-Qwen checkpoints do;
- `seg_projector` (Linear(hidden, hidden) → ReLU → Linear(hidden, SAM-2 hidden)) with PyTorch's default `nn.Linear`
  initialisation under a fixed seed, as the official `text_hidden_fcs`;
- the processor: InternVL checkpoints prompt with an xtuner template (`qwen_chat` for Qwen LLMs, as Sa2VA-InternVL3-*;
  `internlm2_chat` for InternLM2 LLMs, which transformers converts to Llama, as Sa2VA-8B/26B); Qwen-VL checkpoints keep
  their processor's chat template (`"vlm"`), as the released Sa2VA-Qwen ones. The image view follows the VLM config
  (InternVL tile size and tokens per tile; Qwen-VL patch and merge sizes).

Every weight gets one dtype: `dtype`, or the VLM checkpoint's (SAM-2 is cast to it).

The output folder (`save_pretrained` of the model and the processor, remote code included) loads with
`AutoModel` / `AutoProcessor`, with `trust_remote_code=True` or, once `sa2va-hf` is installed, without it.
"""

import argparse
import json
import logging
import pickle
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoTokenizer,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Sam2Config,
    Sam2VideoConfig,
    Sam2VideoModel,
)

from ..models.sa2va.chat_templates_sa2va import SA2VA_CHAT_TEMPLATES, get_chat_template
from ..models.sa2va.configuration_sa2va import SA2VA_VLM_MODEL_TYPES, Sa2VAConfig, sam2_hiera_large_config
from ..models.sa2va.image_processing_sa2va import Sa2VAImageProcessor
from ..models.sa2va.modeling_sa2va import Sa2VAForConditionalGeneration
from ..models.sa2va.modeling_sa2va_sam2 import Sa2VASam2Model
from ..models.sa2va.processing_sa2va import SA2VA_SPECIAL_TOKENS, Sa2VAProcessor
from .convert_official import (
    OUTPUT_DTYPES,
    find_checkpoint_shards,
    list_keys,
    load_sam2_config_argument,
    resolve_dtype,
)
from .key_mapping import SAM2_TABLE, convert_keys, plan_tensor_groups
from .official_processor import QWEN_CHAT_TEMPLATE_FILES, read_processor_chat_template


logger = logging.getLogger(__name__)

# VLM `model_type` → the transformers class `from_pretrained` builds and a Hub folder of that layout.
# fmt: off
SUPPORTED_VLMS = {
    "internvl":   ("InternVLForConditionalGeneration", "OpenGVLab/InternVL3-2B-hf"),
    "qwen2_5_vl": ("Qwen2_5_VLForConditionalGeneration", "Qwen/Qwen2.5-VL-3B-Instruct"),
    "qwen3_vl":   ("Qwen3VLForConditionalGeneration", "Qwen/Qwen3-VL-4B-Instruct"),
}
# fmt: on
# `--template` value that keeps the chat template saved with the VLM's processor (the only choice for Qwen-VL).
VLM_TEMPLATE = "vlm"
# The turn-end marker of the Qwen-VL chat templates; generation stops on it besides the tokenizer's EOS.
QWEN_VL_STOP_WORDS = ("<|im_end|>",)
# Key of the state dict in Meta's SAM-2 checkpoints (`torch.save({"model": state_dict}, ...)`).
SAM2_CHECKPOINT_KEY = "model"
SAM2_CONFIG_TYPES = {"sam2_video": "Sam2VideoModel", "sam2": "Sam2Model"}
# SAM 2.1 modules (transformers names, without the `sam2.` prefix) → the `Sam2VideoConfig` flag that creates them.
SAM2_1_MODULES = {
    "temporal_positional_encoding_projection_layer.": "enable_temporal_pos_encoding_for_object_pointers",
    "occlusion_spatial_embedding_parameter": "enable_occlusion_spatial_embedding",
}
SAM2_PREFIX = "sam2."
WEIGHT_FILE_PATTERNS = ("model*.safetensors*", "pytorch_model*.bin*")
# What `from_pretrained(..., output_loading_info=True)` reports, and how an error message names it.
LOADING_PROBLEMS = {
    "missing_keys": "model tensor(s) not in the checkpoint",
    "unexpected_keys": "checkpoint tensor(s) the model does not have",
    "mismatched_keys": "shape mismatch(es)",
}


def _read_config_json(folder: Path, argument: str) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"`{argument}` {folder} has no config.json; pass a folder saved by `save_pretrained`.")
    return json.loads(path.read_text())


def _describe_supported_vlms() -> str:
    return "; ".join(f"{kind} ({name}, e.g. {example})" for kind, (name, example) in SUPPORTED_VLMS.items())


def check_vlm_folder(vlm_dir: str | Path) -> str:
    """Check that `vlm_dir` is a transformers VLM folder of a family Sa2VA supports and return its `model_type`.

    Raises:
        `FileNotFoundError`: the folder or its `config.json` is missing.
        `ValueError`: the VLM type is not one of `SUPPORTED_VLMS` (the message lists them).
    """
    vlm_dir = Path(vlm_dir)
    if not vlm_dir.is_dir():
        raise FileNotFoundError(
            f"`vlm_dir` {vlm_dir} is not a folder; pass a transformers VLM folder (config.json, weights, tokenizer "
            f"files), e.g. a download of {SUPPORTED_VLMS['internvl'][1]}."
        )
    model_type = _read_config_json(vlm_dir, "vlm_dir").get("model_type")
    if model_type not in SA2VA_VLM_MODEL_TYPES:
        hint = (
            " That is OpenGVLab's remote-code layout; use the transformers version of the model (the `-hf` Hub repo)."
            if model_type == "internvl_chat"
            else ""
        )
        raise ValueError(
            f"{vlm_dir}/config.json has model_type {model_type!r}; Sa2VA can be built on {_describe_supported_vlms()}."
            + hint
        )
    return model_type


def resolve_template(vlm_config: PreTrainedConfig, template: str | None) -> str:
    """The prompt template of a built model: a name of `SA2VA_CHAT_TEMPLATES` (InternVL) or `"vlm"` (Qwen-VL).

    Args:
        vlm_config (`PreTrainedConfig`): the VLM config.
        template (`str`, *optional*): the requested template. Defaults to `internlm2_chat` for an InternVL with an
            InternLM2 LLM (converted to Llama by transformers), `qwen_chat` for any other InternVL (Qwen2 / Qwen3
            LLMs), and `"vlm"` (the processor's own chat template) for Qwen-VL.

    Raises:
        `ValueError`: the template does not exist or does not fit the VLM family.
    """
    if vlm_config.model_type != "internvl":
        if template not in (None, VLM_TEMPLATE):
            raise ValueError(
                f"`template` {template!r} does not apply to {vlm_config.model_type}: Qwen-VL prompts come from the "
                f"chat template saved with the VLM's processor; use template={VLM_TEMPLATE!r} (the default)."
            )
        return VLM_TEMPLATE
    if template is None:
        return "internlm2_chat" if vlm_config.get_text_config().model_type == "llama" else "qwen_chat"
    if template not in SA2VA_CHAT_TEMPLATES:
        raise ValueError(
            f"`template` {template!r} is not a Sa2VA template for InternVL; choose one of "
            f"{', '.join(SA2VA_CHAT_TEMPLATES)} (InternVL's own chat template does not write `<image>` prompts)."
        )
    return template


def _vlm_chat_template(vlm_dir: Path, tokenizer: PreTrainedTokenizerBase) -> str:
    """The chat template saved with a Qwen-VL processor (`chat_template.jinja` / `.json`), else the tokenizer's."""
    if (chat_template := read_processor_chat_template(vlm_dir)) is not None:
        return chat_template
    if tokenizer.chat_template is None:
        raise FileNotFoundError(
            f"{vlm_dir} has no chat template ({' or '.join(QWEN_CHAT_TEMPLATE_FILES)}, or `chat_template` in "
            "tokenizer_config.json); copy the processor files of the Qwen-VL model into the folder."
        )
    return tokenizer.chat_template


def add_sa2va_tokens(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Add the Sa2VA tokens the tokenizer lacks, as special tokens; returns the tokens added, in id order."""
    vocabulary = tokenizer.get_vocab()
    missing = [token for token in SA2VA_SPECIAL_TOKENS if token not in vocabulary]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    return missing


def resize_vocabulary(vlm: PreTrainedModel, num_tokens: int) -> None:
    """Untie the VLM's input embeddings and `lm_head`, then resize both to `num_tokens` rows.

    New rows are initialised by transformers' `resize_token_embeddings` default (`mean_resizing=True`): sampled around
    the mean of the old rows with 1e-9 times their covariance. The global torch seed decides the (tiny) noise.

    Args:
        vlm (`PreTrainedModel`): the VLM (`...ForConditionalGeneration`), changed in place.
        num_tokens (`int`): the new vocabulary size, `len(tokenizer)`.
    """
    embeddings, lm_head = vlm.get_input_embeddings(), vlm.get_output_embeddings()
    for config in (vlm.config, vlm.config.get_text_config()):
        config.tie_word_embeddings = False
    if lm_head.weight.data_ptr() == embeddings.weight.data_ptr():
        lm_head.weight = nn.Parameter(embeddings.weight.detach().clone())
        logger.info("Untied lm_head from the input embeddings (Sa2VA trains them separately).")
    old_size = embeddings.weight.shape[0]
    if num_tokens != old_size:
        vlm.resize_token_embeddings(num_tokens)
        logger.info("Resized the embeddings and lm_head from %d to %d rows.", old_size, num_tokens)


def _sam2_1_flags(keys: list[str]) -> dict[str, bool]:
    """`Sam2VideoConfig` SAM 2.1 flags from transformers parameter names (without the `sam2.` prefix)."""
    return {flag: any(key.startswith(module) for key in keys) for module, flag in SAM2_1_MODULES.items()}


def load_original_sam2_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read Meta's SAM-2 checkpoint and rename its tensors to transformers `Sam2VideoModel` names.

    Args:
        path (`str` or `Path`): a facebookresearch `.pt` file (`{"model": state_dict}`), loaded memory-mapped with
            `weights_only=True`.

    Returns:
        `dict[str, torch.Tensor]`: `Sam2VideoModel` state dict (the four point embeddings concatenated, the
        positional matrix stored for both the prompt encoder and the image-wide encoding).

    Raises:
        `ValueError`: the file is not a readable checkpoint or holds no `"model"` state dict.
    """
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError) as error:
        reason = str(error).splitlines()[0]
        raise ValueError(f"`sam2_path` {path} is not a readable PyTorch checkpoint: {reason}") from error
    state_dict = checkpoint.get(SAM2_CHECKPOINT_KEY) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict) or not all(isinstance(value, torch.Tensor) for value in state_dict.values()):
        found = f"a dict with keys {sorted(checkpoint)[:10]}" if isinstance(checkpoint, dict) else type(checkpoint)
        raise ValueError(
            f"`sam2_path` {path} holds {found}; Meta's SAM-2 checkpoints hold {{'{SAM2_CHECKPOINT_KEY}': state_dict}} "
            "(e.g. sam2_hiera_large.pt). For a transformers SAM-2 pass its folder instead."
        )
    prefixed = {SAM2_TABLE.source_prefix + key: tensor for key, tensor in state_dict.items()}
    converted = {}
    try:
        # Every key carries the SAM-2 prefix, so any family's tables rename it with the SAM-2 table alone.
        for group in plan_tensor_groups(convert_keys(prefixed, "internvl")):
            for target, tensor in zip(group.targets, group.build(*(prefixed[key] for key in group.sources))):
                converted[target.removeprefix(SAM2_PREFIX)] = tensor
    except ValueError as error:
        raise ValueError(f"`sam2_path` {path}: {error}") from error
    return converted


def _sam2_config_from_folder(folder: Path, keys: list[str]) -> Sam2VideoConfig:
    """The `Sam2VideoConfig` of a transformers SAM-2 folder; a `Sam2Config` gets the video defaults for the memory
    modules (the sizes of every released SAM-2) and the SAM 2.1 flags its weights (`keys`) show."""
    model_type = _read_config_json(folder, "sam2_path").get("model_type")
    if model_type == "sam2_video":
        return Sam2VideoConfig.from_pretrained(folder)
    if model_type == "sam2":
        image_config = Sam2Config.from_pretrained(folder)
        return Sam2VideoConfig(
            vision_config=image_config.vision_config.to_dict(),
            prompt_encoder_config={
                k: v for k, v in image_config.prompt_encoder_config.to_dict().items() if k != "model_type"
            },
            mask_decoder_config={
                k: v for k, v in image_config.mask_decoder_config.to_dict().items() if k != "model_type"
            },
            image_size=image_config.prompt_encoder_config.image_size,
            **_sam2_1_flags(keys),
        )
    supported = ", ".join(f"{kind} ({name})" for kind, name in SAM2_CONFIG_TYPES.items())
    raise ValueError(f"{folder}/config.json has model_type {model_type!r}; a SAM-2 folder must be one of {supported}.")


def _as_sam2_video_config(sam2_config: dict | Sam2VideoConfig | None) -> Sam2VideoConfig:
    if sam2_config is None:
        return Sam2VideoConfig(**sam2_hiera_large_config())
    if isinstance(sam2_config, Sam2VideoConfig):
        sam2_config = sam2_config.to_dict()
    if isinstance(sam2_config, dict):
        if sam2_config.get("model_type", "sam2_video") != "sam2_video":
            raise ValueError(
                f"`sam2_config` must describe a Sam2VideoConfig, got model_type {sam2_config['model_type']!r}."
            )
        return Sam2VideoConfig.from_dict(sam2_config)
    raise TypeError(f"`sam2_config` must be a dict, a Sam2VideoConfig or None, got {type(sam2_config).__name__}.")


def load_sam2(
    sam2_path: str | Path, sam2_config: dict | Sam2VideoConfig | None = None, dtype: torch.dtype | None = None
) -> Sa2VASam2Model:
    """Load SAM-2 weights into Sa2VA's SAM-2 module, checking that every weight is used and every parameter filled.

    Args:
        sam2_path (`str` or `Path`): a transformers SAM-2 folder or Meta's original `.pt` file.
        sam2_config (`dict` or `Sam2VideoConfig`, *optional*): sizes of an original `.pt` (default SAM 2.0
            hiera-large); its SAM 2.0 / 2.1 flags are replaced by what the checkpoint's keys show. Not allowed with a
            folder, whose `config.json` is used.
        dtype (`torch.dtype`, *optional*): dtype of the loaded weights (default: float32).

    Returns:
        [`Sa2VASam2Model`]: SAM-2 with the checkpoint's weights.

    Raises:
        `FileNotFoundError`: `sam2_path` does not exist, or the folder has no `config.json`.
        `ValueError`: the checkpoint is not a SAM-2 checkpoint, or its weights do not match the config (every missing,
            unexpected and wrongly shaped tensor is listed).
    """
    sam2_path = Path(sam2_path)
    if sam2_path.is_dir():
        if sam2_config is not None:
            raise ValueError(
                f"`sam2_config` applies to an original .pt checkpoint; {sam2_path} is a transformers folder whose "
                "config.json is used. Drop `sam2_config`."
            )
        _read_config_json(sam2_path, "sam2_path")
        shapes = {
            key: shape for tensors in find_checkpoint_shards(sam2_path).values() for key, (shape, _) in tensors.items()
        }
        config, source, state_dict = _sam2_config_from_folder(sam2_path, list(shapes)), sam2_path, None
    elif sam2_path.is_file():
        state_dict = load_original_sam2_state_dict(sam2_path)
        config, source = _as_sam2_video_config(sam2_config), None
        for flag, value in _sam2_1_flags(list(state_dict)).items():
            if getattr(config, flag) != value:
                logger.info("%s: setting %s=%s from the checkpoint's keys.", sam2_path.name, flag, value)
                setattr(config, flag, value)
        shapes = {key: tuple(tensor.shape) for key, tensor in state_dict.items()}
    else:
        raise FileNotFoundError(
            f"`sam2_path` {sam2_path} does not exist; pass Meta's SAM-2 checkpoint (e.g. sam2_hiera_large.pt) or a "
            "transformers SAM-2 folder."
        )
    check_sam2_shapes(shapes, config, sam2_path)
    if config.enable_temporal_pos_encoding_for_object_pointers or config.enable_occlusion_spatial_embedding:
        logger.warning(
            "%s is SAM 2.1; every released Sa2VA uses SAM 2.0 (sam2_hiera_large.pt). Building with SAM 2.1 as given.",
            sam2_path,
        )
    sam2, info = Sa2VASam2Model.from_pretrained(
        source, config=config, state_dict=state_dict, dtype=dtype or torch.float32, output_loading_info=True
    )
    _raise_on_loading_problems(info, f"The SAM-2 weights in {sam2_path}")
    return sam2


def check_sam2_shapes(shapes: dict[str, tuple[int, ...]], config: Sam2VideoConfig, source: Path) -> None:
    """Check, on `meta`, that SAM-2 tensors fill a `Sam2VideoModel` of `config` exactly.

    Args:
        shapes (`dict[str, tuple[int, ...]]`): transformers key → shape of every checkpoint tensor.
        config (`Sam2VideoConfig`): the SAM-2 config.
        source (`Path`): the checkpoint, for the error message.

    Raises:
        `ValueError`: listing every model tensor the checkpoint lacks, every checkpoint tensor the model does not have
            and every shape mismatch.
    """
    with torch.device("meta"):
        expected = {key: tuple(tensor.shape) for key, tensor in Sam2VideoModel(config).state_dict().items()}
    mismatched = [
        f"{key}: checkpoint {shapes[key]}, model {shape}"
        for key, shape in expected.items()
        if shapes.get(key, shape) != shape
    ]
    problems = [
        (mismatched, LOADING_PROBLEMS["mismatched_keys"]),
        (sorted(set(expected) - set(shapes)), LOADING_PROBLEMS["missing_keys"]),
        (sorted(set(shapes) - set(expected)), LOADING_PROBLEMS["unexpected_keys"]),
    ]
    if any(keys for keys, _ in problems):
        sections = "\n".join(f"  {len(keys)} {title}:\n{list_keys(keys)}" for keys, title in problems if keys)
        hint = (
            "The checkpoint has no memory modules (an image-only Sam2Model?); Sa2VA tracks videos with them: use a "
            "Sam2VideoModel checkpoint or Meta's .pt."
            if not any(key.startswith("memory_attention.") for key in shapes)
            else "For an original .pt pass `sam2_config` with its sizes (the default is SAM 2.0 hiera-large)."
        )
        raise ValueError(
            f"The SAM-2 weights in {source} do not match a Sam2VideoModel of this config.\n{sections}\n{hint}"
        )


def _raise_on_loading_problems(info: dict[str, list], what: str) -> None:
    """Raise when `from_pretrained(..., output_loading_info=True)` left a tensor unfilled, unused or reshaped."""
    problems = [(sorted(map(str, info[kind])), title) for kind, title in LOADING_PROBLEMS.items() if info.get(kind)]
    if problems:
        sections = "\n".join(f"  {len(keys)} {title}:\n{list_keys(keys)}" for keys, title in problems)
        raise ValueError(f"{what} do not match the model of its config.\n{sections}")


def load_vlm(vlm_dir: str | Path, dtype: torch.dtype | None = None) -> PreTrainedModel:
    """Load a supported VLM with `from_pretrained`, refusing a checkpoint that leaves weights unfilled or unused.

    Args:
        vlm_dir (`str` or `Path`): the transformers VLM folder.
        dtype (`torch.dtype`, *optional*): dtype of the weights (default: the checkpoint's).

    Returns:
        `PreTrainedModel`: `InternVLForConditionalGeneration`, `Qwen2_5_VLForConditionalGeneration` or
        `Qwen3VLForConditionalGeneration`.
    """
    check_vlm_folder(vlm_dir)
    try:
        vlm, info = AutoModelForImageTextToText.from_pretrained(
            vlm_dir, dtype=dtype or "auto", output_loading_info=True
        )
    except (OSError, RuntimeError) as error:
        raise ValueError(f"Cannot load the VLM weights in {vlm_dir}: {error}") from error
    _raise_on_loading_problems(info, f"The VLM weights in {vlm_dir}")
    return vlm


def build_processor(
    vlm_dir: str | Path,
    tokenizer: PreTrainedTokenizerBase,
    vlm_config: PreTrainedConfig,
    sam2_config: Sam2VideoConfig,
    template: str,
) -> Sa2VAProcessor:
    """The processor of a built model: the tokenizer (with the Sa2VA tokens), the prompt template and the image view
    that the VLM and SAM-2 configs imply.

    Args:
        vlm_dir (`str` or `Path`): the VLM folder (for a Qwen-VL processor's chat template).
        tokenizer (`PreTrainedTokenizerBase`): the VLM's tokenizer with the Sa2VA tokens.
        vlm_config (`PreTrainedConfig`): the VLM config.
        sam2_config (`Sam2VideoConfig`): the SAM-2 config (its `image_size` is the SAM-2 view's size).
        template (`str`): from [`resolve_template`].

    Raises:
        `ValueError`: the tokenizer's image token disagrees with the VLM config's `image_token_id`.
    """
    family = vlm_config.model_type
    if family == "internvl":
        tile_size = vlm_config.vision_config.image_size
        image_processor = Sa2VAImageProcessor(
            vlm_family=family,
            tile_size=tile_size[0] if isinstance(tile_size, list | tuple) else tile_size,
            sam_image_size=sam2_config.image_size,
        )
        chat_template, stop_words = get_chat_template(template)
        image_seq_length = vlm_config.image_seq_length
    else:
        vision = vlm_config.vision_config
        image_processor = Sa2VAImageProcessor(
            vlm_family=family,
            patch_size=vision.patch_size,
            merge_size=vision.spatial_merge_size,
            temporal_patch_size=vision.temporal_patch_size,
            sam_image_size=sam2_config.image_size,
        )
        chat_template, stop_words = _vlm_chat_template(Path(vlm_dir), tokenizer), QWEN_VL_STOP_WORDS
        image_seq_length = None
    tokenizer.chat_template = chat_template
    kwargs = {} if image_seq_length is None else {"image_seq_length": image_seq_length}
    processor = Sa2VAProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=chat_template,
        stop_words=list(stop_words),
        **kwargs,
    )
    if processor.image_token_id != vlm_config.image_token_id:
        token = processor.image_tokens["context"]
        raise ValueError(
            f"The tokenizer in {vlm_dir} gives {token} the id {processor.image_token_id}, but its config.json has "
            f"image_token_id {vlm_config.image_token_id}; the tokenizer files do not belong to this VLM."
        )
    return processor


def build_from_components(
    vlm_dir: str | Path,
    sam2_path: str | Path,
    dst_dir: str | Path,
    *,
    sam2_config: dict | Sam2VideoConfig | None = None,
    template: str | None = None,
    dtype: torch.dtype | str | None = None,
    seed: int = 0,
) -> Path:
    """Build an untrained Sa2VA from a transformers VLM folder and SAM-2 weights, and save it as a Hub folder.

    Args:
        vlm_dir (`str` or `Path`): a transformers `InternVLForConditionalGeneration`,
            `Qwen2_5_VLForConditionalGeneration` or `Qwen3VLForConditionalGeneration` folder with its tokenizer (and,
            for Qwen-VL, its processor's chat template).
        sam2_path (`str` or `Path`): a transformers `Sam2VideoModel` / `Sam2Model` folder, or Meta's original `.pt`.
        dst_dir (`str` or `Path`): output folder; created if needed, must not already hold weights.
        sam2_config (`dict` or `Sam2VideoConfig`, *optional*): SAM-2 sizes of an original `.pt` (default SAM 2.0
            hiera-large; the 2.0 / 2.1 flags follow the checkpoint's keys).
        template (`str`, *optional*): prompt template, see [`resolve_template`] (InternVL: `qwen_chat` or
            `internlm2_chat` by LLM, or any name of `SA2VA_CHAT_TEMPLATES`; Qwen-VL: `"vlm"`).
        dtype (`torch.dtype` or `str`, *optional*): dtype of every weight (default: the VLM checkpoint's).
        seed (`int`, *optional*, defaults to 0): seed of the new embedding rows and of `seg_projector`.

    Returns:
        `Path`: `dst_dir`, holding `config.json`, the weights, the remote code and the processor files.

    Raises:
        `FileNotFoundError`: a folder, file or `config.json` is missing.
        `FileExistsError`: `dst_dir` already holds weights.
        `ValueError`: an unsupported VLM type (the supported ones are listed), a template that does not fit, SAM-2
            weights that do not match their config, or a tokenizer that does not belong to the VLM.
    """
    vlm_dir, dst_dir = Path(vlm_dir), Path(dst_dir)
    existing = sorted(path for pattern in WEIGHT_FILE_PATTERNS for path in dst_dir.glob(pattern))
    if existing:
        raise FileExistsError(
            f"`dst_dir` {dst_dir} already holds weights ({existing[0].name}); choose an empty folder."
        )
    torch_dtype = resolve_dtype(dtype)

    # Everything that can be checked without the VLM weights comes first: a mistake fails in seconds.
    check_vlm_folder(vlm_dir)
    vlm_config = AutoConfig.from_pretrained(vlm_dir)
    template = resolve_template(vlm_config, template)
    tokenizer = AutoTokenizer.from_pretrained(vlm_dir)
    added = add_sa2va_tokens(tokenizer)
    logger.info("Added %s to the tokenizer (%d tokens).", ", ".join(added) or "no token", len(tokenizer))
    sam2 = load_sam2(sam2_path, sam2_config, dtype=torch_dtype)
    processor = build_processor(vlm_dir, tokenizer, vlm_config, sam2.config, template)

    vlm = load_vlm(vlm_dir, torch_dtype)
    sam2.to(vlm.dtype)
    with torch.random.fork_rng(devices=[]):  # seeded, without touching the caller's random state
        torch.manual_seed(seed)
        resize_vocabulary(vlm, len(tokenizer))
        config = Sa2VAConfig(
            vlm_config=vlm.config.to_dict(), sam2_config=sam2.config.to_dict(), seg_token_id=processor.seg_token_id
        )
        with torch.device("meta"):
            model = Sa2VAForConditionalGeneration(config)
        # The loaded parts replace the empty ones: no second copy of any weight is made.
        model.vlm, model.sam2 = vlm, sam2
        model.seg_projector.to_empty(device=vlm.device)
        torch.manual_seed(seed)
        for layer in model.seg_projector:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
    model.seg_projector.to(vlm.dtype)

    dst_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst_dir)
    processor.save_pretrained(dst_dir)
    logger.info(
        "Built %s: %s + SAM-2 from %s, template %s, [SEG] id %d, %s.",
        dst_dir,
        vlm_dir,
        sam2_path,
        template,
        config.seg_token_id,
        vlm.dtype,
    )
    return dst_dir


def main(argv: list[str] | None = None) -> int:
    """Command line: `--vlm DIR --sam2 PATH DST [--sam2-config JSON] [--template NAME] [--dtype D] [--seed N]`.

    Returns:
        `int`: 0 on success, 1 when the model cannot be built (the reason is logged).
    """
    parser = argparse.ArgumentParser(
        prog="sa2va-hf build",
        description="Assemble an untrained Sa2VA from a transformers VLM folder and SAM-2 weights.",
    )
    parser.add_argument("dst", metavar="DST", help="output folder (must not already hold weights)")
    parser.add_argument(
        "--vlm", required=True, metavar="DIR", help=f"transformers VLM folder: {_describe_supported_vlms()}"
    )
    parser.add_argument(
        "--sam2",
        required=True,
        metavar="PATH",
        help="Meta's SAM-2 .pt (e.g. sam2_hiera_large.pt) or a transformers folder",
    )
    parser.add_argument(
        "--sam2-config",
        metavar="JSON",
        default=None,
        help="Sam2VideoConfig of an original .pt, as a JSON file or inline JSON (default: SAM 2.0 hiera-large)",
    )
    parser.add_argument(
        "--template",
        default=None,
        choices=(*SA2VA_CHAT_TEMPLATES, VLM_TEMPLATE),
        help="prompt template (default: qwen_chat for InternVL with a Qwen LLM, internlm2_chat for InternLM2, "
        "vlm = the processor's chat template for Qwen-VL)",
    )
    parser.add_argument(
        "--dtype", choices=OUTPUT_DTYPES, default=None, help="dtype of the written weights (default: the VLM's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the new embedding rows and seg_projector")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        sam2_config = None if args.sam2_config is None else load_sam2_config_argument(args.sam2_config)
        build_from_components(
            args.vlm,
            args.sam2,
            args.dst,
            sam2_config=sam2_config,
            template=args.template,
            dtype=args.dtype,
            seed=args.seed,
        )
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as error:
        logger.error("%s", error)
        return 1
    return 0


__all__ = [
    "SUPPORTED_VLMS",
    "add_sa2va_tokens",
    "build_from_components",
    "build_processor",
    "check_vlm_folder",
    "load_original_sam2_state_dict",
    "load_sam2",
    "load_vlm",
    "main",
    "resize_vocabulary",
    "resolve_template",
]


if __name__ == "__main__":
    raise SystemExit(main())
