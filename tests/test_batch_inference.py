"""`batch_predict_forward`: several (image | video | text, question) rows in one generation, each row equal to
`predict_forward` on it alone, for every VLM family."""

import numpy as np
import pytest

from conftest import FAMILIES
from sa2va_hf.synthetic import random_clip, random_scene


def requests() -> list[dict]:
    clip = [scene.image for scene in random_clip(seed=5, size=(40, 32), num_frames=3)]
    return [
        {"image": random_scene(seed=1, size=(64, 48)).image, "text": "<image>Please segment the red square."},
        {"image": random_scene(seed=2, size=(30, 50)).image, "text": "<image>Segment everything you can see here."},
        {"video": clip, "text": "<image>Segment the shape."},
        {"text": "Hello?"},
    ]


@pytest.mark.parametrize("family", FAMILIES)
def test_each_row_equals_the_row_alone(tiny_models, family):
    model, processor = tiny_models(family)
    kwargs = {"sequence_bias": {(processor.seg_token_id,): 3.0}, "max_new_tokens": 6}
    batch = model.batch_predict_forward(requests(), processor=processor, **kwargs)
    assert len(batch) == 4
    for row, request in zip(batch, requests()):
        alone = model.predict_forward(**request, processor=processor, **kwargs)
        assert row["prediction"] == alone["prediction"]
        assert row["past_text"] == alone["past_text"]
        assert len(row["prediction_masks"]) == len(alone["prediction_masks"])
        for mask, expected in zip(row["prediction_masks"], alone["prediction_masks"]):
            assert mask.shape == expected.shape
            # Padded batches round differently; only pixels on the threshold may flip.
            assert np.mean(mask != expected) <= 1e-3
    assert any(row["prediction_masks"] for row in batch[:3]), "no row produced a mask; the test checks nothing"


def test_bad_requests_name_the_row(tiny_models):
    model, processor = tiny_models("internvl")
    with pytest.raises(ValueError, match=r"requests\[1\] has unknown keys \['images'\]"):
        model.batch_predict_forward([{"text": "Hi"}, {"images": [], "text": "Hi"}], processor=processor)
    with pytest.raises(ValueError, match="`requests` is empty"):
        model.batch_predict_forward([], processor=processor)
