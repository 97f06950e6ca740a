"""sa2va-hf: Sa2VA as Hugging Face transformers models.

Importing the package registers the Sa2VA classes with the `Auto*` factories, so checkpoints saved by this package
load with `AutoModel` / `AutoProcessor` without `trust_remote_code`.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
)

from .models.sa2va import (
    Sa2VACausalLMOutputWithPast,
    Sa2VAConfig,
    Sa2VAForConditionalGeneration,
    Sa2VAImageProcessor,
    Sa2VAPreTrainedModel,
    Sa2VAProcessor,
)


__version__ = "0.1.0"

AutoConfig.register(Sa2VAConfig.model_type, Sa2VAConfig, exist_ok=True)
for _auto_class in (AutoModel, AutoModelForCausalLM, AutoModelForImageTextToText):
    _auto_class.register(Sa2VAConfig, Sa2VAForConditionalGeneration, exist_ok=True)
AutoImageProcessor.register(Sa2VAConfig, slow_image_processor_class=Sa2VAImageProcessor, exist_ok=True)
AutoProcessor.register(Sa2VAConfig, Sa2VAProcessor, exist_ok=True)

# `save_pretrained` writes `auto_map` and copies the model folder, so the checkpoint also loads with remote code.
Sa2VAConfig.register_for_auto_class("AutoConfig")
Sa2VAForConditionalGeneration.register_for_auto_class("AutoModel")
Sa2VAImageProcessor.register_for_auto_class("AutoImageProcessor")
Sa2VAProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "Sa2VACausalLMOutputWithPast",
    "Sa2VAConfig",
    "Sa2VAForConditionalGeneration",
    "Sa2VAImageProcessor",
    "Sa2VAPreTrainedModel",
    "Sa2VAProcessor",
    "__version__",
]
