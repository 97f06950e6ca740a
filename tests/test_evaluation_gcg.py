"""GCG metrics and runner on a synthetic GranD-f-layout split."""

import json
import sys
import types

import numpy as np
import pytest
from PIL import Image

from sa2va_hf.evaluation import gcg
from sa2va_hf.evaluation.metrics import rle_decode, rle_encode


class GCGOracle:
    """Answers with the ground-truth phrases and masks of the image (looked up by its width)."""

    def __init__(self, truth: dict[int, list[dict]]) -> None:
        self.truth = truth

    def predict_forward(self, image, text):
        regions = self.truth[image.width]
        answer = " and ".join(f"<p>{r['label']}</p> [SEG]" for r in regions) + "."
        return {"prediction": answer, "prediction_masks": [rle_decode(r["segmentation"])[None] for r in regions]}


def test_parse_answer():
    caption, phrases = gcg.parse_answer("A <p>red car</p> [SEG] next to <p>a tree</p> [SEG] .")
    assert caption == "A red car next to a tree." and phrases == ["red car", "a tree"]


def test_greedy_miou_and_recall_matching():
    ious = np.array([[0.9, 0.6], [0.7, 0.0], [0.0, 0.0]])
    assert gcg.greedy_miou(ious) == pytest.approx((0.9 + 0.0) / 1)  # 0.9 pairs (0, 0); row 1 only has 0 left
    sims = np.ones_like(ious)
    assert gcg.matched_regions(ious, sims) == 1
    assert gcg.matched_regions(np.array([[0.9, 0.0], [0.0, 0.8]]), np.array([[0.2, 1], [1, 1]])) == 0  # stops
    assert gcg.bag_of_words_similarity("a red car", "the red car") == pytest.approx(2 / 3)


def write_grandf(root, truth):
    images, annotations, captions = [], [], []
    for image_id, width in ((1, 30), (2, 34)):
        Image.new("RGB", (width, 20)).save(root / f"{image_id}.jpg")
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "height": 20, "width": width})
        regions = []
        for k, label in enumerate(["a red car", "the tall tree"]):
            mask = np.zeros((20, width), bool)
            mask[2 + 8 * k : 8 + 8 * k, 3 : 10 + image_id * 5] = True
            regions.append({"segmentation": rle_encode(mask), "label": label})
            annotations.append(
                {
                    "id": 10 * image_id + k,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "area": int(mask.sum()),
                    "bbox": [3, 2 + 8 * k, 7 + image_id * 5, 6],
                    **regions[-1],
                }
            )
        captions.append({"id": image_id, "image_id": image_id, "caption": "a red car and the tall tree."})
        truth[width] = regions
    categories = [{"id": 1, "name": "object"}]
    (root / "val_gcg_coco_mask_gt.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    (root / "val_gcg_coco_caption_gt.json").write_text(json.dumps({"images": images, "annotations": captions}))


def test_gcg_runner_perfect(tmp_path, monkeypatch):
    truth: dict = {}
    write_grandf(tmp_path, truth)
    module = types.ModuleType("sa2va_gcg_oracle")
    module.perfect = lambda: GCGOracle(truth)
    monkeypatch.setitem(sys.modules, "sa2va_gcg_oracle", module)
    argv = ["--ann", str(tmp_path), "--images", str(tmp_path), "--predictor", "sa2va_gcg_oracle:perfect"]
    assert gcg.main([*argv, "--output", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "results.json").read_text())["summary"]
    assert summary["AP"] == pytest.approx(100) and summary["AP50"] == pytest.approx(100)
    assert summary["mIoU"] == pytest.approx(100) and summary["recall"] == pytest.approx(100)
    assert summary["recall_similarity"] == "bag_of_words_similarity"
    assert "not_computed" in summary["captioning"] or "CIDEr" in summary["captioning"]


def test_gcg_missing_field(tmp_path):
    write_grandf(tmp_path, {})
    data = json.loads((tmp_path / "val_gcg_coco_mask_gt.json").read_text())
    del data["annotations"][0]["label"]
    (tmp_path / "val_gcg_coco_mask_gt.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"val_gcg_coco_mask_gt\.json: annotations\[0\] has no field 'label'"):
        gcg.GCGEvaluator(tmp_path, tmp_path, "val", gcg.bag_of_words_similarity)
