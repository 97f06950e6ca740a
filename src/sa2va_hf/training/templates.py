"""Question and answer wordings for referring segmentation conversations built from (description, mask) pairs."""

import numpy as np

from ..models.sa2va.chat_templates_sa2va import IMAGE_PLACEHOLDER
from .samples import SEG_TOKEN


# `{phrase}` is the object's description.
SEGMENTATION_QUESTIONS = (
    "Please segment {phrase} in this image.",
    "Can you segment {phrase} in this image?",
    "Could you give me a mask of {phrase}?",
    "Where is {phrase}? Answer with a segmentation mask.",
    "Find {phrase} in the picture and segment it.",
    "Show me {phrase} as a segmentation mask.",
)
SEGMENTATION_ANSWERS = (
    f"Sure, {SEG_TOKEN}.",
    f"It is {SEG_TOKEN}.",
    f"Here it is: {SEG_TOKEN}.",
    f"{SEG_TOKEN}.",
)


def referring_conversation(phrases: list[str], rng: np.random.Generator) -> list[dict[str, str]]:
    """A multi-turn conversation asking for each phrase's mask in turn, one `[SEG]` per answer.

    Args:
        phrases (`list[str]`): object descriptions, in the order of their masks; surrounding spaces and a final
            full stop are removed so they read inside a question.
        rng (`np.random.Generator`): picks a question and an answer wording per turn.

    Returns:
        `list[dict]`: user/assistant turns; the first question starts with `"<image>\\n"`.
    """
    conversation = []
    for turn, phrase in enumerate(phrases):
        question = SEGMENTATION_QUESTIONS[rng.integers(len(SEGMENTATION_QUESTIONS))]
        answer = SEGMENTATION_ANSWERS[rng.integers(len(SEGMENTATION_ANSWERS))]
        text = question.format(phrase=phrase.strip().rstrip(".").strip())
        conversation.append({"role": "user", "content": f"{IMAGE_PLACEHOLDER}\n{text}" if turn == 0 else text})
        conversation.append({"role": "assistant", "content": answer})
    return conversation


__all__ = ["SEGMENTATION_ANSWERS", "SEGMENTATION_QUESTIONS", "referring_conversation"]
