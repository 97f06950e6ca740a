"""The bundled `tiny-shapes` model grounds what it was trained on, on held-out scenes (a seed training never used).

Thresholds sit a little below the scores measured on a larger held-out set (`training_recipe.json`)."""

import json

import numpy as np
import pytest

from sa2va_hf.presets import BUNDLED_PRESETS, load_preset
from sa2va_hf.synthetic import random_scene
from sa2va_hf.training.shapes import SHAPES_NUM_KEY_FRAMES, evaluate_shapes, mask_iou


@pytest.fixture(scope="module")
def shapes_model():
    return load_preset("tiny-shapes")


def test_bundled_model_is_small_and_documents_its_training():
    folder = BUNDLED_PRESETS["tiny-shapes"]
    weights = folder / "model.safetensors"
    assert weights.stat().st_size < 8 * 1024 * 1024
    report = json.loads((folder / "training_recipe.json").read_text())
    assert {"recipe", "train_minutes", "held_out_scores"} <= set(report)
    assert not list(folder.glob("*.py")), "the bundled model loads with the package's classes, not remote code"


def test_held_out_grounding_scores(shapes_model):
    model, processor = shapes_model
    scores = evaluate_shapes(
        model, processor, seed=20261123, num_images=40, num_clips=6, num_absent=0, num_captions=0, show_progress=False
    )
    assert scores["image_iou"] >= IMAGE_IOU_FLOOR, scores
    assert scores["clip_iou"] >= CLIP_IOU_FLOOR, scores
    assert scores["answer_format"] >= ANSWER_FORMAT_FLOOR, scores


def test_sizes_and_aspect_ratios_from_64_to_512(shapes_model):
    model, processor = shapes_model
    ious = []
    for seed, size in enumerate([(64, 64), (512, 512), (512, 96), (80, 400), (300, 200)]):
        scene = random_scene(seed + 100, size=size, num_shapes=2)
        target = int(np.argmax([m.sum() for m in scene.masks]))
        question = f"<image>Please segment the {scene.shapes[target].name}."
        result = model.predict_forward(image=scene.image, text=question, processor=processor, max_new_tokens=32)
        assert result["prediction_masks"][0].shape == (1, size[1], size[0])
        ious.append(mask_iou(result["prediction_masks"][0][0], scene.masks[target]))
    assert np.mean(ious) >= SIZES_IOU_FLOOR, ious


def test_every_frame_of_a_short_clip_is_a_key_frame(shapes_model):
    model, _ = shapes_model
    assert model.config.num_key_frames == SHAPES_NUM_KEY_FRAMES == 8
    assert model.config.key_frame_strategy == "uniform"
