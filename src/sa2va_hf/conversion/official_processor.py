"""The processor of a converted official checkpoint: its tokenizer, its prompt template and the family's image view."""

import copy
import json
import shutil
from pathlib import Path

from transformers import AutoTokenizer
from transformers.dynamic_module_utils import get_relative_import_files

from ..models.sa2va import modeling_sa2va
from ..models.sa2va.chat_templates_sa2va import get_chat_template
from ..models.sa2va.configuration_sa2va import Sa2VAConfig
from ..models.sa2va.image_processing_sa2va import Sa2VAImageProcessor
from ..models.sa2va.processing_sa2va import Sa2VAProcessor


# Where an official Qwen-VL checkpoint keeps the chat template of its processor, in order of preference.
QWEN_CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


def read_processor_chat_template(folder: Path) -> str | None:
    """The chat template a Qwen-VL processor saved in `folder` (`chat_template.jinja` or `.json`), or `None`."""
    for name in QWEN_CHAT_TEMPLATE_FILES:
        path = folder / name
        if path.is_file():
            text = path.read_text()
            return json.loads(text)["chat_template"] if name.endswith(".json") else text
    return None


def build_official_processor(config: Sa2VAConfig, src_dir: str | Path, template: str | None, key_family: str):
    """Assemble the [`Sa2VAProcessor`] of an official checkpoint folder.

    InternVL checkpoints get the xtuner template named in their `config.json` (`qwen_chat`, `internlm2_chat`,
    `phi3_chat`) and its stop words; Qwen-VL checkpoints keep their processor's chat template. InternLM2 tokenizers
    (official remote code) are converted to a transformers-native fast tokenizer.

    Args:
        config ([`Sa2VAConfig`]): the converted config (its text config stands in for the official `config.json`,
            which names remote code, when the tokenizer is looked up).
        src_dir (`str` or `Path`): the official checkpoint folder.
        template (`str` or `None`): the official template name (InternVL family).
        key_family (`str`): the conversion key family (`"internvl_internlm2"` selects the InternLM2 tokenizer).
    """
    src_dir, vlm_family = Path(src_dir), config.vlm_family
    if key_family == "internvl_internlm2":
        from .tokenizer_internlm2 import convert_internlm2_tokenizer  # needs sentencepiece, only for InternLM2

        tokenizer = convert_internlm2_tokenizer(src_dir)
    else:
        tokenizer = AutoTokenizer.from_pretrained(src_dir, config=config.text_config, trust_remote_code=False)
    if vlm_family == "internvl":
        if template is None:
            raise ValueError(f"{src_dir}/config.json names no `template`; InternVL checkpoints need one.")
        chat_template, stop_words = get_chat_template(template)
    else:
        chat_template, stop_words = read_processor_chat_template(src_dir), ()
        if chat_template is None:
            raise FileNotFoundError(
                f"{src_dir} has no chat template ({' or '.join(QWEN_CHAT_TEMPLATE_FILES)}); an official Qwen-VL "
                "checkpoint saves its processor's template there."
            )
    tokenizer.chat_template = chat_template
    return Sa2VAProcessor(
        image_processor=Sa2VAImageProcessor(vlm_family=vlm_family),
        tokenizer=tokenizer,
        chat_template=chat_template,
        stop_words=list(stop_words),
    )


def save_config_and_code(config: Sa2VAConfig, dst_dir: str | Path) -> list[Path]:
    """Write `config.json` with its `auto_map` and the model's remote-code files, as `save_pretrained` would.

    Used when the weights are written tensor by tensor (conversion) rather than from a model in memory.
    """
    dst_dir = Path(dst_dir)
    model_file = Path(modeling_sa2va.__file__)
    copied = []
    model_class = modeling_sa2va.Sa2VAForConditionalGeneration
    sources = [
        model_file,
        *map(Path, get_relative_import_files(str(model_file))),
        *model_class.remote_code_extra_files(),
    ]
    for source in sources:
        copied.append(Path(shutil.copyfile(source, dst_dir / source.name)))
    config.auto_map = {**(getattr(config, "auto_map", None) or {}), **model_class.remote_code_auto_map()}
    config.custom_pipelines = copy.deepcopy(modeling_sa2va.CUSTOM_PIPELINES)
    config.save_pretrained(dst_dir)
    return copied


__all__ = ["build_official_processor", "read_processor_chat_template", "save_config_and_code"]
