"""Fine-tuning Sa2VA with `transformers.Trainer`: training samples (see `samples.py`) and readers of several formats
with their mixture, the collator, the LoRA recipe, the trainer and the `sa2va-hf train` entry point."""

from .collator import Sa2VADataCollator
from .datasets_registry import build_dataset
from .gcg import gcg_conversation, grounded_caption
from .jsonl_dataset import JsonlDataset
from .llava_dataset import LlavaDataset
from .masks import decode_mask, rle_encode
from .media import sample_frame_indices
from .mixed_dataset import MixedDataset
from .refseg_dataset import ReferringSegmentationDataset
from .samples import SEG_TOKEN, check_dataset, normalize_conversation, validate_sample
from .templates import referring_conversation
from .trainer import Sa2VATrainer


__all__ = [
    "JsonlDataset",
    "LlavaDataset",
    "MixedDataset",
    "ReferringSegmentationDataset",
    "SEG_TOKEN",
    "Sa2VADataCollator",
    "Sa2VATrainer",
    "build_dataset",
    "check_dataset",
    "decode_mask",
    "gcg_conversation",
    "grounded_caption",
    "normalize_conversation",
    "referring_conversation",
    "rle_encode",
    "sample_frame_indices",
    "validate_sample",
]
