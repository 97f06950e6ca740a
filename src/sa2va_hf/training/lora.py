"""What Sa2VA fine-tuning trains: LoRA on the language model, the `[SEG]` path in full, encoders frozen.

As the official recipe: LoRA adapters on every linear layer of the LLM's decoder layers (names anchored on
`language_model.layers.N`, since `q_proj`, `fc1`, ... also exist in the vision tower and in SAM-2), the `seg_projector`
and SAM-2's mask decoder trained in full, the embedding rows of the tokens Sa2VA adds (`[SEG]`, `<p>`, ...) trainable,
the vision tower and the rest of SAM-2 frozen.
"""

from torch import nn

from ..models.sa2va.modeling_sa2va import Sa2VAForConditionalGeneration
from ..models.sa2va.processing_sa2va import SA2VA_SPECIAL_TOKENS


# Every projection of every decoder layer of the LLM (Qwen2 / Llama / Qwen2.5-VL / Qwen3-VL text models).
LLM_LORA_TARGETS = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
# Trained in full beside the adapters.
FULLY_TRAINED_MODULES = ["seg_projector", "mask_decoder"]


def sa2va_token_ids(model: Sa2VAForConditionalGeneration, tokenizer) -> list[int]:
    """Ids of the tokens Sa2VA adds to the VLM's vocabulary (`[SEG]`, `<p>`, `</p>`, `<vp>`, `</vp>`)."""
    ids = [tokenizer.convert_tokens_to_ids(token) for token in SA2VA_SPECIAL_TOKENS]
    if model.config.seg_token_id not in ids:
        raise ValueError(
            f"The tokenizer's [SEG] id {ids[0]} differs from the model's `seg_token_id` {model.config.seg_token_id}."
        )
    return ids


def lora_config(
    model: Sa2VAForConditionalGeneration,
    tokenizer,
    r: int = 128,
    lora_alpha: int = 256,
    lora_dropout: float = 0.05,
):
    """A `peft.LoraConfig` for Sa2VA (official defaults: r 128, alpha 256, dropout 0.05).

    The new tokens' rows of the input embedding and of the output layer are trained (`trainable_token_indices`), not
    whole matrices.
    """
    from peft import LoraConfig

    token_ids = sa2va_token_ids(model, tokenizer)
    return LoraConfig(
        r=r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        target_modules=LLM_LORA_TARGETS,
        modules_to_save=fully_trained_modules(model),
        trainable_token_indices={"embed_tokens": token_ids, "lm_head": token_ids},
        bias="none",
    )


def vision_tower(model: Sa2VAForConditionalGeneration) -> nn.Module:
    """The VLM's vision encoder (Qwen-VL's `visual` includes its patch merger; InternVL's projector is apart)."""
    inner = model.vlm.model
    return inner.visual if hasattr(inner, "visual") else inner.vision_tower


def freeze_for_finetuning(
    model: Sa2VAForConditionalGeneration, train_vision: bool = False, train_sam2_encoder: bool = False
) -> None:
    """Freeze what the official recipe freezes: the vision tower (Qwen-VL: with its patch merger; InternVL's projector
    stays trainable) and all of SAM-2 but its mask decoder (training never runs SAM-2's memory path); `train_vision`
    and `train_sam2_encoder` unfreeze the two encoders."""
    vision_tower(model).requires_grad_(train_vision)
    model.sam2.requires_grad_(False)
    model.sam2.mask_decoder.requires_grad_(True)
    model.sam2.vision_encoder.requires_grad_(train_sam2_encoder)


def trainable_parameter_summary(model: nn.Module) -> str:
    """`"trainable: N of M parameters (P%)"`."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"trainable: {trainable:,} of {total:,} parameters ({100 * trainable / max(total, 1):.2f}%)"


def merge_lora(peft_model) -> Sa2VAForConditionalGeneration:
    """Fold the adapters (and the trained token rows and modules) into a plain Sa2VA model that loads with
    `AutoModel.from_pretrained` after `save_pretrained`."""
    merged = peft_model.merge_and_unload()
    if not isinstance(merged, Sa2VAForConditionalGeneration):
        raise TypeError(f"Merging gave a {type(merged).__name__}, not a Sa2VAForConditionalGeneration.")
    return merged


def fully_trained_modules(model: Sa2VAForConditionalGeneration) -> list[str]:
    """Modules trained in full beside the adapters: `FULLY_TRAINED_MODULES`, plus InternVL's vision-to-LLM projector
    (`multi_modal_projector`, the official `mlp1`), which the official InternVL recipes train."""
    extra = ["multi_modal_projector"] if model.config.vlm_family == "internvl" else []
    return [*FULLY_TRAINED_MODULES, *extra]


__all__ = [
    "FULLY_TRAINED_MODULES",
    "LLM_LORA_TARGETS",
    "freeze_for_finetuning",
    "fully_trained_modules",
    "lora_config",
    "merge_lora",
    "sa2va_token_ids",
    "trainable_parameter_summary",
    "vision_tower",
]
