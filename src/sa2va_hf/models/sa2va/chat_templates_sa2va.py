"""Prompt templates of the released Sa2VA checkpoints, as data.

InternVL-family checkpoints were trained with xtuner templates (named in the official `config.json` as `template`);
here each is a Jinja chat template that renders exactly the official prompt: no system prompt unless one is given,
`<image>` where an image goes (the processor expands it into image tokens), the answer closed by the template's
end-of-turn marker. Qwen-VL checkpoints use the chat template saved with their Qwen processor.
"""

# An image in a message renders as this placeholder; the processor replaces it by the family's image tokens.
IMAGE_PLACEHOLDER = "<image>"

_CONTENT = (
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' or item['type'] == 'video' %}<image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
)


def _turn_template(user: str, assistant: str, system: str, end: str) -> str:
    return (
        "{% for message in messages %}"
        f"{{% if message['role'] == 'system' %}}{system}{_CONTENT}{end}"
        f"{{% elif message['role'] == 'user' %}}{user}{_CONTENT}{end}"
        f"{{% elif message['role'] == 'assistant' %}}{assistant}{_CONTENT}{end}"
        "{% endif %}{% endfor %}"
        f"{{% if add_generation_prompt %}}{assistant}{{% endif %}}"
    )


# name -> (chat template, stop words). The stop words end generation besides the tokenizer's EOS.
# fmt: off
SA2VA_CHAT_TEMPLATES: dict[str, tuple[str, tuple[str, ...]]] = {
    # Qwen2 / Qwen2.5 LLMs (Sa2VA-1B, Sa2VA-InternVL3-*): <|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n
    "qwen_chat": (
        _turn_template("<|im_start|>user\n", "<|im_start|>assistant\n", "<|im_start|>system\n", "<|im_end|>\n"),
        ("<|im_end|>", "<|endoftext|>"),
    ),
    # InternLM2 LLMs (Sa2VA-8B, Sa2VA-26B): the same turns; the tokenizer adds <s> in front.
    "internlm2_chat": (
        _turn_template("<|im_start|>user\n", "<|im_start|>assistant\n", "<|im_start|>system\n", "<|im_end|>\n"),
        ("<|im_end|>",),
    ),
    # Phi-3 template (Sa2VA-4B): <|user|>\n{input}<|end|>\n<|assistant|>\n
    "phi3_chat": (
        _turn_template("<|user|>\n", "<|assistant|>\n", "<|system|>\n", "<|end|>\n"),
        ("<|end|>",),
    ),
}
# fmt: on


def get_chat_template(name: str) -> tuple[str, tuple[str, ...]]:
    """Return `(jinja_chat_template, stop_words)` of a named Sa2VA template."""
    if name not in SA2VA_CHAT_TEMPLATES:
        raise ValueError(f"Unknown Sa2VA chat template {name!r}; known: {', '.join(SA2VA_CHAT_TEMPLATES)}.")
    return SA2VA_CHAT_TEMPLATES[name]


__all__ = ["IMAGE_PLACEHOLDER", "SA2VA_CHAT_TEMPLATES", "get_chat_template"]
