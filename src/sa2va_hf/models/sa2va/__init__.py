"""The Sa2VA model folder: flat and self-contained, copied to the Hub as remote code."""

from .configuration_sa2va import Sa2VAConfig
from .image_processing_sa2va import Sa2VAImageProcessor
from .modeling_sa2va import (
    Sa2VACausalLMOutputWithPast,
    Sa2VAForConditionalGeneration,
    Sa2VAPreTrainedModel,
    Sa2VAVideoStream,
)
from .modeling_sa2va_sam2 import ObjectBatchedMemory, Sa2VASam2Model
from .processing_sa2va import Sa2VAProcessor


__all__ = [
    "ObjectBatchedMemory",
    "Sa2VACausalLMOutputWithPast",
    "Sa2VAConfig",
    "Sa2VAForConditionalGeneration",
    "Sa2VAImageProcessor",
    "Sa2VAPreTrainedModel",
    "Sa2VAProcessor",
    "Sa2VASam2Model",
    "Sa2VAVideoStream",
]
