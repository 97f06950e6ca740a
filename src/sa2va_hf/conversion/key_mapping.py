"""Key names of official Sa2VA checkpoints → sa2va-hf key names, and the tensor surgery the renaming needs.

Pure functions over key names and tensors, no file access: [`convert_keys`] renames every official key with the
ordered regex tables below (one per component), [`find_dropped_keys`] lists the keys that are deliberately left
out, and [`plan_tensor_groups`] turns the renamed keys into groups that build the final tensors (most are copied
as they are; fused attention weights are split, SAM-2's four point embeddings are concatenated, its random
positional-encoding matrix is used twice).

The official layouts (`bytedance/Sa2VA`, `tools/convert_to_hf.py`):

| family | official top-level prefixes (all have `grounding_encoder.sam2_model.` and `text_hidden_fcs.`) |
|---|---|
| InternVL (Sa2VA-1B/4B/InternVL3-*) | `vision_model.`, `mlp1.`, `language_model.{model,lm_head}.` |
| InternVL + InternLM2 (Sa2VA-8B/26B) | `vision_model.`, `mlp1.`, `language_model.{model,output}.`, InternLM2 names |
| Qwen2.5-VL / Qwen3-VL | `model.model.{visual,language_model}.`, `model.lm_head.` |

Ours: `vlm.` + the transformers VLM (`InternVLForConditionalGeneration`, `Qwen2_5_VLForConditionalGeneration`,
`Qwen3VLForConditionalGeneration`), `sam2.` + `Sam2VideoModel`, and `seg_projector.{0,2}`.
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

import torch


KEY_FAMILIES = ("internvl", "internvl_internlm2", "qwen2_5_vl", "qwen3_vl")

# fmt: off
# SAM-2, original facebookresearch names (Sa2VA keeps them under `grounding_encoder.sam2_model.`) → `Sam2VideoModel`.
# Each rule applies to the result of the rules above it.
SAM2_KEY_MAPPING = {
    r"^grounding_encoder\.sam2_model\.":                        r"sam2.",
    # image encoder: Hiera trunk + FPN neck
    r"^sam2\.image_encoder\.trunk\.":                           r"sam2.vision_encoder.backbone.",
    r"^sam2\.image_encoder\.neck\.convs\.(\d+)\.conv\.":        r"sam2.vision_encoder.neck.convs.\1.",
    r"\.patch_embed\.proj\.":                                   r".patch_embed.projection.",
    r"(\.blocks\.\d+\.mlp)\.layers\.0\.":                       r"\1.proj_in.",
    r"(\.blocks\.\d+\.mlp)\.layers\.1\.":                       r"\1.proj_out.",
    # prompt encoder
    r"^sam2\.sam_prompt_encoder\.":                             r"sam2.prompt_encoder.",
    r"\.pe_layer\.positional_encoding_gaussian_matrix$":        r".shared_embedding.positional_embedding",
    r"\.point_embeddings\.(\d+)\.weight$":                      r".point_embed.\1.weight",
    r"\.mask_downscaling\.0\.":                                 r".mask_embed.conv1.",
    r"\.mask_downscaling\.1\.":                                 r".mask_embed.layer_norm1.",
    r"\.mask_downscaling\.3\.":                                 r".mask_embed.conv2.",
    r"\.mask_downscaling\.4\.":                                 r".mask_embed.layer_norm2.",
    r"\.mask_downscaling\.6\.":                                 r".mask_embed.conv3.",
    # mask decoder
    r"^sam2\.sam_mask_decoder\.":                               r"sam2.mask_decoder.",
    r"\.output_upscaling\.0\.":                                 r".upscale_conv1.",
    r"\.output_upscaling\.1\.":                                 r".upscale_layer_norm.",
    r"\.output_upscaling\.3\.":                                 r".upscale_conv2.",
    r"(\.transformer\.layers\.\d+\.mlp)\.layers\.0\.":          r"\1.proj_in.",
    r"(\.transformer\.layers\.\d+\.mlp)\.layers\.1\.":          r"\1.proj_out.",
    r"\.norm_final_attn\.":                                     r".layer_norm_final_attn.",
    # object pointers, memory tokens and encodings
    r"^sam2\.obj_ptr_proj\.":                                   r"sam2.object_pointer_proj.",
    r"^sam2\.no_obj_ptr$":                                      r"sam2.no_object_pointer",
    r"^sam2\.obj_ptr_tpos_proj\.":                              r"sam2.temporal_positional_encoding_projection_layer.",
    r"^sam2\.no_obj_embed_spatial$":                            r"sam2.occlusion_spatial_embedding_parameter",
    r"^sam2\.maskmem_tpos_enc$":                                r"sam2.memory_temporal_positional_encoding",
    r"^sam2\.no_mem_embed$":                                    r"sam2.no_memory_embedding",
    r"^sam2\.no_mem_pos_enc$":                                  r"sam2.no_memory_positional_encoding",
    # three-layer MLP heads: layers.{0,1,2} → proj_in, layers.0, proj_out (in this order)
    r"(iou_prediction_head|pred_obj_score_head|output_hypernetworks_mlps\.\d+|object_pointer_proj)\.layers\.0\.":
                                                                r"\1.proj_in.",
    r"(iou_prediction_head|pred_obj_score_head|output_hypernetworks_mlps\.\d+|object_pointer_proj)\.layers\.1\.":
                                                                r"\1.layers.0.",
    r"(iou_prediction_head|pred_obj_score_head|output_hypernetworks_mlps\.\d+|object_pointer_proj)\.layers\.2\.":
                                                                r"\1.proj_out.",
    # memory encoder: mask downsampler (4 × [conv, LayerNorm2d, GELU] + 1×1 conv), fuser (2 CXBlocks), projections
    r"^sam2\.memory_encoder\.out_proj\.":                       r"sam2.memory_encoder.projection.",
    r"^sam2\.memory_encoder\.pix_feat_proj\.":                  r"sam2.memory_encoder.feature_projection.",
    r"^sam2\.memory_encoder\.fuser\.":                          r"sam2.memory_encoder.memory_fuser.",
    r"\.dwconv\.":                                              r".depthwise_conv.",
    r"\.pwconv(\d)\.":                                          r".pointwise_conv\1.",
    r"\.(?:gamma|g_weight)$":                                   r".scale",
    r"\.mask_downsampler\.encoder\.0\.":                        r".mask_downsampler.layers.0.conv.",
    r"\.mask_downsampler\.encoder\.1\.":                        r".mask_downsampler.layers.0.layer_norm.",
    r"\.mask_downsampler\.encoder\.3\.":                        r".mask_downsampler.layers.1.conv.",
    r"\.mask_downsampler\.encoder\.4\.":                        r".mask_downsampler.layers.1.layer_norm.",
    r"\.mask_downsampler\.encoder\.6\.":                        r".mask_downsampler.layers.2.conv.",
    r"\.mask_downsampler\.encoder\.7\.":                        r".mask_downsampler.layers.2.layer_norm.",
    r"\.mask_downsampler\.encoder\.9\.":                        r".mask_downsampler.layers.3.conv.",
    r"\.mask_downsampler\.encoder\.10\.":                       r".mask_downsampler.layers.3.layer_norm.",
    r"\.mask_downsampler\.encoder\.12\.":                       r".mask_downsampler.final_conv.",
    # generic names: attention output projections and norms (Hiera blocks, memory attention, two-way transformer)
    r"\.out_proj\.":                                            r".o_proj.",
    r"\.norm(\d?)\.":                                           r".layer_norm\1.",
}

# InternViT (`InternVisionModel`) → `InternVLVisionModel`. The fused `qkv` keeps a fused name here and is split into
# `q_proj`, `k_proj`, `v_proj` by `split_internvit_qkv`.
INTERNVIT_KEY_MAPPING = {
    r"^vision_model\.":                                             r"vlm.model.vision_tower.",
    r"\.embeddings\.class_embedding$":                              r".embeddings.cls_token",
    r"\.embeddings\.position_embedding$":                           r".embeddings.position_embeddings",
    r"\.embeddings\.patch_embedding\.":                             r".embeddings.patch_embeddings.projection.",
    r"\.encoder\.layers\.(\d+)\.":                                  r".encoder.layer.\1.",
    r"\.attn\.qkv\.":                                               r".attention.qkv.",
    r"\.attn\.proj\.":                                              r".attention.projection_layer.",
    r"\.attn\.(q|k)_norm\.":                                        r".attention.\1_norm.",
    r"\.ls(1|2)$":                                                  r".lambda_\1",
    r"\.norm1\.":                                                   r".layernorm_before.",
    r"\.norm2\.":                                                   r".layernorm_after.",
}

# InternVL's `mlp1` (LayerNorm → Linear → GELU → Linear) → `InternVLMultiModalProjector`.
INTERNVL_PROJECTOR_KEY_MAPPING = {
    r"^mlp1\.0\.":                                                  r"vlm.model.multi_modal_projector.layer_norm.",
    r"^mlp1\.1\.":                                                  r"vlm.model.multi_modal_projector.linear_1.",
    r"^mlp1\.3\.":                                                  r"vlm.model.multi_modal_projector.linear_2.",
}

# A transformers causal LM inside InternVL (Qwen2ForCausalLM, Qwen3ForCausalLM, LlamaForCausalLM): names unchanged.
LANGUAGE_MODEL_KEY_MAPPING = {
    r"^language_model\.model\.":                                    r"vlm.model.language_model.",
    r"^language_model\.lm_head\.":                                  r"vlm.lm_head.",
}

# InternLM2 (remote-code `InternLM2ForCausalLM`) → Llama. The fused `wqkv` keeps a fused name here and is split by
# `split_internlm2_wqkv`.
INTERNLM2_KEY_MAPPING = {
    r"^language_model\.model\.":                                    r"vlm.model.language_model.",
    r"^language_model\.output\.":                                   r"vlm.lm_head.",
    r"\.tok_embeddings\.":                                          r".embed_tokens.",
    r"\.attention\.wqkv\.":                                         r".self_attn.wqkv.",
    r"\.attention\.wo\.":                                           r".self_attn.o_proj.",
    r"\.feed_forward\.w1\.":                                        r".mlp.gate_proj.",
    r"\.feed_forward\.w2\.":                                        r".mlp.down_proj.",
    r"\.feed_forward\.w3\.":                                        r".mlp.up_proj.",
    r"\.attention_norm\.":                                          r".input_layernorm.",
    r"\.ffn_norm\.":                                                r".post_attention_layernorm.",
}

# Qwen2.5-VL / Qwen3-VL: the official wrapper holds the transformers model as `model`, so only the prefix changes.
# The last two rules read checkpoints saved with transformers < 4.52 (`model.visual.*`, text model at `model.model.*`).
QWEN_VL_KEY_MAPPING = {
    r"^model\.model\.visual\.":                                     r"vlm.model.visual.",
    r"^model\.model\.language_model\.":                             r"vlm.model.language_model.",
    r"^model\.lm_head\.":                                           r"vlm.lm_head.",
    r"^model\.visual\.":                                            r"vlm.model.visual.",
    r"^model\.model\.":                                             r"vlm.model.language_model.",
}

# `text_hidden_fcs` (Linear → ReLU → Linear → Dropout(0)) → `seg_projector` (Linear → ReLU → Linear).
SEG_PROJECTOR_KEY_MAPPING = {
    r"^text_hidden_fcs\.(0|2)\.":                                   r"seg_projector.\1.",
}

# Official keys left out on purpose, with the reason. Anything neither mapped nor listed here is an error.
DROPPED_KEYS = {
    r"\.rotary_emb\.inv_freq$":    "RoPE inverse frequencies: a buffer transformers recomputes from the config "
                                   "(older transformers versions and remote-code LLMs saved it with the weights)",
}
# fmt: on


@dataclass(frozen=True)
class KeyTable:
    """The renaming rules of one component: official keys starting with `source_prefix` go through `rules`."""

    component: str
    source_prefix: str
    rules: dict[str, str]


SAM2_TABLE = KeyTable("SAM-2", "grounding_encoder.sam2_model.", SAM2_KEY_MAPPING)
INTERNVIT_TABLE = KeyTable("InternViT", "vision_model.", INTERNVIT_KEY_MAPPING)
INTERNVL_PROJECTOR_TABLE = KeyTable("InternVL projector", "mlp1.", INTERNVL_PROJECTOR_KEY_MAPPING)
LANGUAGE_MODEL_TABLE = KeyTable("language model", "language_model.", LANGUAGE_MODEL_KEY_MAPPING)
INTERNLM2_TABLE = KeyTable("InternLM2", "language_model.", INTERNLM2_KEY_MAPPING)
QWEN_VL_TABLE = KeyTable("Qwen-VL", "model.", QWEN_VL_KEY_MAPPING)
SEG_PROJECTOR_TABLE = KeyTable("[SEG] projector", "text_hidden_fcs.", SEG_PROJECTOR_KEY_MAPPING)

FAMILY_KEY_TABLES: dict[str, tuple[KeyTable, ...]] = {
    "internvl": (INTERNVIT_TABLE, INTERNVL_PROJECTOR_TABLE, LANGUAGE_MODEL_TABLE, SAM2_TABLE, SEG_PROJECTOR_TABLE),
    "internvl_internlm2": (
        INTERNVIT_TABLE,
        INTERNVL_PROJECTOR_TABLE,
        INTERNLM2_TABLE,
        SAM2_TABLE,
        SEG_PROJECTOR_TABLE,
    ),
    "qwen2_5_vl": (QWEN_VL_TABLE, SAM2_TABLE, SEG_PROJECTOR_TABLE),
    "qwen3_vl": (QWEN_VL_TABLE, SAM2_TABLE, SEG_PROJECTOR_TABLE),
}

# Fused tensors, by their name after renaming (see the tables above).
INTERNVIT_QKV_PATTERN = re.compile(r"^(vlm\.model\.vision_tower\..*\.attention)\.qkv\.(weight|bias)$")
INTERNLM2_WQKV_PATTERN = re.compile(r"^(vlm\.model\.language_model\..*\.self_attn)\.wqkv\.(weight|bias)$")
SAM2_POINT_EMBED_PATTERN = re.compile(r"^sam2\.prompt_encoder\.point_embed\.(\d+)\.weight$")
SAM2_POINT_EMBED_KEY = "sam2.prompt_encoder.point_embed.weight"
SAM2_POSITIONAL_MATRIX_KEYS = (
    "sam2.prompt_encoder.shared_embedding.positional_embedding",
    "sam2.shared_image_embedding.positional_embedding",
)


def _check_family(family: str) -> tuple[KeyTable, ...]:
    if family not in FAMILY_KEY_TABLES:
        raise ValueError(f"Unknown checkpoint family {family!r}; expected one of {', '.join(KEY_FAMILIES)}.")
    return FAMILY_KEY_TABLES[family]


def describe_key_tables(family: str) -> str:
    """The components of a family and the official prefix each covers, for error messages."""
    return ", ".join(f"{table.component} `{table.source_prefix}`" for table in _check_family(family))


def _rename(key: str, rules: dict[str, str]) -> str:
    for pattern, replacement in rules.items():
        key = re.sub(pattern, replacement, key)
    return key


def find_dropped_keys(keys: Iterable[str]) -> dict[str, str]:
    """Official keys that the conversion leaves out on purpose.

    Args:
        keys (`Iterable[str]`): official checkpoint keys.

    Returns:
        `dict[str, str]`: each dropped key → the reason it is dropped (from `DROPPED_KEYS`).
    """
    dropped = {}
    for key in keys:
        for pattern, reason in DROPPED_KEYS.items():
            if re.search(pattern, key):
                dropped[key] = reason
                break
    return dropped


def rename_keys(keys: Iterable[str], family: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Sort official keys into renamed, dropped and unknown ones; [`convert_keys`] is the strict form.

    Returns:
        `tuple`: `(renamed, dropped, unknown)`: official key → new key, official key → reason, and the keys that no
        table covers.
    """
    tables = _check_family(family)
    keys = list(keys)
    dropped = find_dropped_keys(keys)
    renamed, unknown = {}, []
    for key in keys:
        if key in dropped:
            continue
        table = next((table for table in tables if key.startswith(table.source_prefix)), None)
        if table is None:
            unknown.append(key)
        else:
            renamed[key] = _rename(key, table.rules)
    return renamed, dropped, unknown


def convert_keys(keys: Iterable[str], family: str) -> dict[str, str]:
    """Rename official Sa2VA checkpoint keys to sa2va-hf keys.

    Fused tensors get a fused name that [`plan_tensor_groups`] resolves: `...attention.qkv.*` (InternViT),
    `...self_attn.wqkv.*` (InternLM2), `sam2.prompt_encoder.point_embed.{i}.weight` (SAM-2). Dropped keys
    ([`find_dropped_keys`]) are left out of the result.

    Args:
        keys (`Iterable[str]`): official checkpoint keys.
        family (`str`): one of `KEY_FAMILIES`: `"internvl"` (InternVL with a Qwen2/Qwen3/Llama LLM),
            `"internvl_internlm2"` (InternVL with InternLM2, i.e. Sa2VA-8B/26B), `"qwen2_5_vl"`, `"qwen3_vl"`.

    Returns:
        `dict[str, str]`: official key → new key, for every key that is not dropped.

    Raises:
        `ValueError`: if `family` is unknown or a key is neither covered by the family's tables nor dropped.

    Example:

    ```python
    >>> convert_keys(["grounding_encoder.sam2_model.no_obj_ptr", "text_hidden_fcs.2.bias"], "qwen3_vl")
    {'grounding_encoder.sam2_model.no_obj_ptr': 'sam2.no_object_pointer',
     'text_hidden_fcs.2.bias': 'seg_projector.2.bias'}
    ```
    """
    renamed, _, unknown = rename_keys(keys, family)
    if unknown:
        raise ValueError(
            f"{len(unknown)} official key(s) are not covered by the {family!r} key tables "
            f"({describe_key_tables(family)}) and are not in DROPPED_KEYS: {', '.join(unknown)}"
        )
    return renamed


def split_internvit_qkv(qkv: torch.Tensor) -> list[torch.Tensor]:
    """Split InternViT's fused attention input projection into query, key and value.

    Args:
        qkv (`torch.Tensor` of shape `(3 * hidden_size, hidden_size)` or `(3 * hidden_size,)`):
            `attn.qkv.weight` or `attn.qkv.bias`, rows ordered `[query, key, value]`.

    Returns:
        `list[torch.Tensor]`: `[q, k, v]`, each of shape `(hidden_size, hidden_size)` or `(hidden_size,)`.
    """
    if qkv.shape[0] % 3:
        raise ValueError(f"A fused InternViT qkv tensor needs a multiple of 3 rows, got shape {tuple(qkv.shape)}.")
    return [part.contiguous() for part in qkv.chunk(3, dim=0)]


def split_internlm2_wqkv(wqkv: torch.Tensor, num_attention_heads: int, num_key_value_heads: int) -> list[torch.Tensor]:
    """Split InternLM2's fused `attention.wqkv` into Llama's `q_proj`, `k_proj`, `v_proj`.

    InternLM2 lays the rows out per key/value head: for each of the `num_key_value_heads` groups, the
    `num_attention_heads // num_key_value_heads` query heads of that group, then its key head, then its value head,
    each `head_dim` rows. Query head `g * group_size + i` therefore uses key/value head `g`, which is exactly Llama's
    grouped-query convention, so the query heads keep their order.

    Args:
        wqkv (`torch.Tensor` of shape `((num_attention_heads + 2 * num_key_value_heads) * head_dim, hidden_size)`):
            the fused weight (or a bias of shape `((num_attention_heads + 2 * num_key_value_heads) * head_dim,)`).
        num_attention_heads (`int`): query heads.
        num_key_value_heads (`int`): key/value heads.

    Returns:
        `list[torch.Tensor]`: `[q, k, v]` of shapes `(num_attention_heads * head_dim, hidden_size)`,
        `(num_key_value_heads * head_dim, hidden_size)` and `(num_key_value_heads * head_dim, hidden_size)`.
    """
    if num_attention_heads % num_key_value_heads:
        raise ValueError(
            f"num_attention_heads ({num_attention_heads}) must be a multiple of num_key_value_heads "
            f"({num_key_value_heads})."
        )
    group_size = num_attention_heads // num_key_value_heads
    rows_per_group, remainder = divmod(wqkv.shape[0], num_key_value_heads * (group_size + 2))
    if remainder:
        raise ValueError(
            f"A fused InternLM2 wqkv tensor of shape {tuple(wqkv.shape)} does not split into {num_attention_heads} "
            f"query heads and {num_key_value_heads} key/value heads."
        )
    head_dim, rest = rows_per_group, wqkv.shape[1:]
    grouped = wqkv.reshape(num_key_value_heads, group_size + 2, head_dim, *rest)
    query = grouped[:, :group_size].reshape(num_attention_heads * head_dim, *rest)
    key = grouped[:, group_size].reshape(num_key_value_heads * head_dim, *rest)
    value = grouped[:, group_size + 1].reshape(num_key_value_heads * head_dim, *rest)
    return [query.contiguous(), key.contiguous(), value.contiguous()]


def concat_sam2_point_embeddings(*point_embeddings: torch.Tensor) -> list[torch.Tensor]:
    """Stack SAM-2's point-type embeddings (`point_embeddings.{0..3}`) into one `nn.Embedding` weight.

    Args:
        *point_embeddings (`torch.Tensor` of shape `(1, hidden_size)`): one per point type, in index order
            (negative, positive, box corner 1, box corner 2).

    Returns:
        `list[torch.Tensor]`: `[point_embed]` of shape `(num_point_embeddings, hidden_size)`.
    """
    return [torch.cat(point_embeddings, dim=0)]


def duplicate_sam2_positional_matrix(matrix: torch.Tensor) -> list[torch.Tensor]:
    """SAM-2's random Fourier-feature matrix serves both the prompt encoder and the image-wide positional encoding.

    Args:
        matrix (`torch.Tensor` of shape `(2, hidden_size // 2)`): `pe_layer.positional_encoding_gaussian_matrix`.

    Returns:
        `list[torch.Tensor]`: two separate copies, for the two keys of `SAM2_POSITIONAL_MATRIX_KEYS`.
    """
    return [matrix, matrix.clone()]


def _identity(tensor: torch.Tensor) -> list[torch.Tensor]:
    return [tensor]


@dataclass(frozen=True)
class TensorGroup:
    """Target tensors built from one or more official tensors.

    Attributes:
        sources (`tuple[str, ...]`): official keys, in the order `build` takes them.
        targets (`tuple[str, ...]`): sa2va-hf keys, in the order `build` returns them.
        build (`Callable[..., list[torch.Tensor]]`): takes the source tensors, returns the target tensors.
    """

    sources: tuple[str, ...]
    targets: tuple[str, ...]
    build: Callable[..., list[torch.Tensor]]


def plan_tensor_groups(
    renamed: dict[str, str], *, num_attention_heads: int | None = None, num_key_value_heads: int | None = None
) -> list[TensorGroup]:
    """Group renamed keys into the tensor operations that produce the final sa2va-hf tensors.

    Args:
        renamed (`dict[str, str]`): official key → new key, as [`convert_keys`] returns it.
        num_attention_heads (`int`, *optional*): query heads of an InternLM2 language model (needed to split `wqkv`).
        num_key_value_heads (`int`, *optional*): key/value heads of an InternLM2 language model.

    Returns:
        `list[TensorGroup]`: one group per final tensor or set of tensors made together. Every official key is the
        source of exactly one group.
    """
    groups, point_embeddings = [], {}
    for source, target in renamed.items():
        if match := INTERNVIT_QKV_PATTERN.match(target):
            prefix, kind = match.groups()
            targets = tuple(f"{prefix}.{name}_proj.{kind}" for name in ("q", "k", "v"))
            groups.append(TensorGroup((source,), targets, split_internvit_qkv))
        elif match := INTERNLM2_WQKV_PATTERN.match(target):
            if num_attention_heads is None or num_key_value_heads is None:
                raise ValueError(f"Splitting {source!r} needs `num_attention_heads` and `num_key_value_heads`.")
            prefix, kind = match.groups()
            targets = tuple(f"{prefix}.{name}_proj.{kind}" for name in ("q", "k", "v"))
            split = partial(
                split_internlm2_wqkv, num_attention_heads=num_attention_heads, num_key_value_heads=num_key_value_heads
            )
            groups.append(TensorGroup((source,), targets, split))
        elif match := SAM2_POINT_EMBED_PATTERN.match(target):
            point_embeddings[int(match.group(1))] = source
        elif target == SAM2_POSITIONAL_MATRIX_KEYS[0]:
            groups.append(TensorGroup((source,), SAM2_POSITIONAL_MATRIX_KEYS, duplicate_sam2_positional_matrix))
        else:
            groups.append(TensorGroup((source,), (target,), _identity))
    if point_embeddings:
        if sorted(point_embeddings) != list(range(len(point_embeddings))):
            raise ValueError(
                f"SAM-2 point embeddings must be numbered 0..n-1, got {sorted(point_embeddings)} "
                f"({', '.join(point_embeddings.values())})."
            )
        sources = tuple(point_embeddings[index] for index in range(len(point_embeddings)))
        groups.append(TensorGroup(sources, (SAM2_POINT_EMBED_KEY,), concat_sam2_point_embeddings))
    return groups


__all__ = [
    "DROPPED_KEYS",
    "FAMILY_KEY_TABLES",
    "KEY_FAMILIES",
    "KeyTable",
    "TensorGroup",
    "concat_sam2_point_embeddings",
    "convert_keys",
    "describe_key_tables",
    "duplicate_sam2_positional_matrix",
    "find_dropped_keys",
    "plan_tensor_groups",
    "rename_keys",
    "split_internlm2_wqkv",
    "split_internvit_qkv",
]
