"""Training data for Sa2VA: canonical samples (see `samples.py`), readers of several formats, and their mixture."""

from .gcg import gcg_conversation, grounded_caption
from .jsonl_dataset import JsonlDataset
from .llava_dataset import LlavaDataset
from .masks import decode_mask, rle_encode
from .media import sample_frame_indices
from .mixed_dataset import MixedDataset
from .refseg_dataset import ReferringSegmentationDataset
from .samples import SEG_TOKEN, check_dataset, normalize_conversation, validate_sample
from .templates import referring_conversation


__all__ = [
    "JsonlDataset",
    "LlavaDataset",
    "MixedDataset",
    "ReferringSegmentationDataset",
    "SEG_TOKEN",
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
