"""Grounded conversation generation (GCG): a caption whose phrases are each followed by the `[SEG]` of their mask."""

import numpy as np

from ..models.sa2va.chat_templates_sa2va import IMAGE_PLACEHOLDER
from .samples import SEG_TOKEN


GCG_QUESTIONS = (
    "Describe the image briefly and segment every object you mention.",
    "Write a short caption of this picture with a mask for each object it names.",
    "What does this image show? Answer with a caption whose objects are segmented.",
    "Caption the image, and give a segmentation mask after each object you name.",
)


def grounded_caption(caption: str, spans: list[tuple[int, int]]) -> str:
    """Tag character spans of `caption` as the official GCG data does: `<p> phrase </p> [SEG]`.

    Args:
        caption (`str`): the plain caption.
        spans (`list[tuple[int, int]]`): `(start, end)` character offsets of the grounded phrases, in caption order and
            not overlapping; the i-th span's mask is the i-th mask of the sample.

    Returns:
        `str`: e.g. `"<p> A man </p> [SEG] rides <p> a horse </p> [SEG]."` for spans of "A man" and "a horse".

    Raises:
        `ValueError` naming the span that is empty, out of the caption, overlapping or out of order.
    """
    pieces, cursor = [], 0
    for position, (start, end) in enumerate(spans):
        if not cursor <= start < end <= len(caption):
            raise ValueError(
                f"`spans`[{position}] = ({start}, {end}) must be non-empty, inside the caption (length "
                f"{len(caption)}), after the previous span (ending at {cursor}); give spans in caption order."
            )
        phrase = caption[start:end].strip()
        if not phrase:
            raise ValueError(f"`spans`[{position}] = ({start}, {end}) covers only spaces.")
        pieces += [caption[cursor:start], f"<p> {phrase} </p> {SEG_TOKEN}"]
        cursor = end
    pieces.append(caption[cursor:])
    return "".join(pieces)


def gcg_conversation(caption: str, spans: list[tuple[int, int]], rng: np.random.Generator) -> list[dict[str, str]]:
    """One GCG turn: a seeded question from `GCG_QUESTIONS` and the grounded caption as the answer.

    Returns:
        `list[dict]`: `[{"role": "user", "content": "<image>\\n..."}, {"role": "assistant", "content": caption}]`,
        with one `[SEG]` per span, in order.
    """
    question = GCG_QUESTIONS[rng.integers(len(GCG_QUESTIONS))]
    return [
        {"role": "user", "content": f"{IMAGE_PLACEHOLDER}\n{question}"},
        {"role": "assistant", "content": grounded_caption(caption, spans)},
    ]


__all__ = ["GCG_QUESTIONS", "gcg_conversation", "grounded_caption"]
