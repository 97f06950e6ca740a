"""Grounded conversation generation (GCG) on GranD-f (official §7.3): mask AP, mIoU, recall and caption metrics.

Layout of `--ann` (GLaMM's `annotations/gcg_val_test/`, as read by the official `metrics_gcg.py`)::

    {split}_gcg_coco_caption_gt.json  images (id: the image file's stem, the evaluated set); annotations (image_id,
                                      caption, labels: the phrases of the image's regions, in region order)
    {split}_gcg_coco_mask_gt.json     COCO instances: annotations (id, image_id, segmentation RLE), one per region

`--images` is the folder of the image files (GranD-f `val_test/`, shared by both splits): `file_name` of the caption
file's image when given, else `<id>.jpg`. The answer to the official prompt gives the caption (every `<...>` tag and
`[SEG]` removed, whitespace collapsed) and its `<p>phrase</p>` list; the i-th `[SEG]` mask belongs to the i-th phrase.

Recall needs a phrase similarity. The official code uses the cosine of mean-pooled `bert-base-uncased` embeddings,
which cannot be downloaded here; the default is `bag_of_words_similarity` (cosine of word-count vectors, offline) and
any `(str, str) -> float` can be passed (`--similarity module:function`). Results name the similarity used. Caption
metrics (BLEU-4, METEOR, ROUGE-L, CIDEr) need `pycocoevalcap`; without it they are reported as not computed.

One process per GPU (or CPU processes, gloo), each taking every N-th image::

    accelerate launch --num_processes N -m sa2va_hf.evaluation.gcg --ann glamm/annotations/gcg_val_test \\
        --images glamm/images/grandf/val_test --split val --model ByteDance/Sa2VA-InternVL3-2B --output runs/gcg_val
    ACCELERATE_USE_CPU=1 CUDA_VISIBLE_DEVICES="" accelerate launch --multi_gpu --num_processes N \\
        -m sa2va_hf.evaluation.gcg ...

(`accelerate launch --cpu` starts a single process.) An interrupted run resumes from `--output`.
"""

import argparse
import contextlib
import importlib
import importlib.util
import io
import json
import logging
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .distributed import Shard
from .metrics import rle_encode
from .runner import add_common_arguments, config_of, load_predictor, run_items, write_results


logger = logging.getLogger(__name__)

PROMPT = (
    "<image>\nCould you please give me a brief description of the image? Please respond with interleaved "
    "segmentation masks for the corresponding parts of the answer."
)
PHRASE_PATTERN = re.compile(r"<p>(.*?)</p>")
TAG_PATTERN = re.compile(r"<.*?>")

Similarity = Callable[[str, str], float]


def parse_answer(answer: str) -> tuple[str, list[str]]:
    """Split a GCG answer into its caption and its `<p>…</p>` phrases (in order), as the official evaluation does.

    The caption is the answer after its last `ASSISTANT: `, without `<s>`, newlines, `<...>` tags and `[SEG]`, with
    whitespace collapsed and surrounding quotes stripped (spaces before punctuation are kept).
    """
    answer = answer.replace("<s>", "").replace("\n", "").replace("  ", " ").split("ASSISTANT: ")[-1]
    phrases = [phrase.strip() for phrase in PHRASE_PATTERN.findall(answer)]
    caption = " ".join(TAG_PATTERN.sub("", answer).replace("[SEG]", "").split()).strip("'").strip()
    return caption, phrases


def bag_of_words_similarity(a: str, b: str) -> float:
    """Cosine similarity of lower-cased word-count vectors (offline stand-in for the official BERT similarity)."""
    ca, cb = Counter(re.findall(r"\w+", a.lower())), Counter(re.findall(r"\w+", b.lower()))
    norm = np.sqrt(sum(v * v for v in ca.values()) * sum(v * v for v in cb.values()))
    return float(sum(ca[w] * cb[w] for w in ca) / norm) if norm else 0.0


def iou_matrix(preds: list[dict], gts: list[dict]) -> np.ndarray:
    """IoU of every (prediction, ground truth) RLE pair, `(num_preds, num_gts)` (pycocotools `iou`)."""
    if not preds or not gts:
        return np.zeros((len(preds), len(gts)))
    encode = [{**r, "counts": r["counts"].encode("ascii")} if isinstance(r["counts"], str) else r for r in preds + gts]
    return np.asarray(mask_utils.iou(encode[: len(preds)], encode[len(preds) :], [0] * len(gts)))


def greedy_miou(ious: np.ndarray) -> float:
    """The official mIoU of one image: repeatedly pair the highest-IoU (pred, gt), remove both, average the pairs."""
    ious = ious.copy()
    paired = []
    while ious.size and ious.max() > 0:
        i, j = np.unravel_index(np.argmax(ious), ious.shape)
        paired.append(ious[i, j])
        ious = np.delete(np.delete(ious, i, axis=0), j, axis=1)
    return float(np.mean(paired)) if paired else 0.0


def matched_regions(ious: np.ndarray, similarities: np.ndarray, iou_th: float = 0.5, sim_th: float = 0.5) -> int:
    """Official recall matching: greedy by IoU, stopping at the first best pair below either threshold."""
    ious, similarities = ious.copy(), similarities.copy()
    matches = 0
    while ious.size and ious.max() > 0:
        i, j = np.unravel_index(np.argmax(ious), ious.shape)
        if ious[i, j] < iou_th or similarities[i, j] < sim_th:
            break
        matches += 1
        ious[i, :], ious[:, j] = 0, 0
        similarities[i, :], similarities[:, j] = 0, 0
    return matches


def mask_ap(gt_path: Path, records: list[dict]) -> dict[str, float]:
    """COCO segm AP and AP50 of the predicted masks (one category, score 1.0) on the evaluated images."""
    detections = [
        {"image_id": r["image_id"], "category_id": 1, "segmentation": rle, "score": 1.0}
        for r in records
        for rle in r["pred_masks"]
    ]
    if not detections:
        return {"AP": 0.0, "AP50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        for ann in coco_gt.dataset["annotations"]:
            ann["category_id"] = 1
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(detections)
        evaluator = COCOeval(coco_gt, coco_dt, "segm")
        evaluator.params.imgIds = [r["image_id"] for r in records]
        evaluator.params.catIds = [1]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"AP": 100 * float(evaluator.stats[0]), "AP50": 100 * float(evaluator.stats[1])}


def caption_metrics(records: list[dict], references: dict[int, list[str]]) -> dict:
    """BLEU-4, METEOR, ROUGE-L, CIDEr via `pycocoevalcap`, or `{"not_computed": reason}` when it is missing."""
    if importlib.util.find_spec("pycocoevalcap") is None:
        return {"not_computed": "pycocoevalcap is not installed (pip install pycocoevalcap)"}
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge

    res = {r["image_id"]: [r["caption"]] for r in records}
    gts = {image_id: references[image_id] for image_id in res}
    return {
        "BLEU-4": 100 * Bleu(4).compute_score(gts, res)[0][3],
        "METEOR": 100 * Meteor().compute_score(gts, res)[0],
        "ROUGE-L": 100 * Rouge().compute_score(gts, res)[0],
        "CIDEr": 100 * Cider().compute_score(gts, res)[0],
    }


def _load_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from error


def _field(record, key: str, path: Path, where: str):
    if not isinstance(record, dict) or key not in record:
        raise ValueError(f"{path}: {where} has no field {key!r}")
    return record[key]


class GCGEvaluator:
    """Reads GranD-f ground truth, predicts one image, and scores a run.

    Args:
        ann_dir (`Path`): folder of `{split}_gcg_coco_{mask,caption}_gt.json`.
        images_dir (`Path`): folder of the images.
        split (`str`): `val` or `test`.
        similarity (`Callable[[str, str], float]`): phrase similarity for recall.
    """

    def __init__(self, ann_dir: Path, images_dir: Path, split: str, similarity: Similarity) -> None:
        self.mask_path = ann_dir / f"{split}_gcg_coco_mask_gt.json"
        self.caption_path = ann_dir / f"{split}_gcg_coco_caption_gt.json"
        masks = _load_json(self.mask_path, "GCG mask ground truth")
        captions = _load_json(self.caption_path, "GCG caption ground truth")
        self.images_dir = images_dir
        self.similarity = similarity
        self.images = []
        for i, image in enumerate(_field(captions, "images", self.caption_path, "the top level")):
            image_id = _field(image, "id", self.caption_path, f"images[{i}]")
            self.images.append({"id": image_id, "file_name": image.get("file_name", f"{image_id}.jpg")})
        self.regions: dict[int | str, list[dict]] = {image["id"]: [] for image in self.images}
        for i, ann in enumerate(_field(masks, "annotations", self.mask_path, "the top level")):
            where = f"annotations[{i}]"
            image_id = _field(ann, "image_id", self.mask_path, where)
            self.regions.setdefault(image_id, []).append(_field(ann, "segmentation", self.mask_path, where))
        self.references: dict[int | str, list[str]] = {}
        self.labels: dict[int | str, list[str]] = {}
        for i, ann in enumerate(_field(captions, "annotations", self.caption_path, "the top level")):
            where = f"annotations[{i}]"
            image_id = _field(ann, "image_id", self.caption_path, where)
            self.references.setdefault(image_id, []).append(_field(ann, "caption", self.caption_path, where))
            labels = self.labels.setdefault(image_id, _field(ann, "labels", self.caption_path, where))
            if len(labels) != len(self.regions.get(image_id, [])):
                raise ValueError(
                    f"{self.caption_path}: {where} field 'labels' has {len(labels)} phrases, but {self.mask_path} "
                    f"has {len(self.regions.get(image_id, []))} regions of image {image_id!r}"
                )

    def predict(self, predictor, image: dict) -> dict:
        """Answer the GCG prompt on one image; return its caption, phrases and one RLE per `[SEG]`."""
        pil = Image.open(self.images_dir / image["file_name"]).convert("RGB")
        result = predictor.predict_forward(image=pil, text=PROMPT)
        caption, phrases = parse_answer(result["prediction"])
        masks = [
            rle_encode(np.asarray(m, dtype=bool).reshape(-1, pil.height, pil.width)[0])
            for m in result["prediction_masks"]
        ]
        return {
            "image_id": image["id"],
            "prediction": result["prediction"],
            "caption": caption,
            "phrases": phrases,
            "pred_masks": masks,
        }

    def score_image(self, record: dict) -> dict:
        """mIoU and the number of recalled ground-truth regions of one image (recall uses the first caption's labels)."""
        regions = self.regions.get(record["image_id"], [])
        labels = self.labels.get(record["image_id"], [])
        ious = iou_matrix(record["pred_masks"], regions)
        sims = np.array([[self.similarity(p, label) for label in labels] for p in record["phrases"]])
        sims = sims.reshape(len(record["phrases"]), len(labels))
        n = min(len(record["pred_masks"]), len(record["phrases"]))
        return {
            "mIoU": greedy_miou(ious),
            "matched": matched_regions(ious[:n], sims[:n]),
            "num_regions": len(labels),
        }

    def summarize(self, records: list[dict], similarity_name: str) -> dict:
        """AP / AP50, mIoU, recall (×100), caption metrics, and the similarity used."""
        scores = [self.score_image(r) for r in records]
        total = sum(s["num_regions"] for s in scores)
        return {
            **mask_ap(self.mask_path, records),
            "mIoU": 100 * float(np.mean([s["mIoU"] for s in scores])) if scores else 0.0,
            "recall": 100 * sum(s["matched"] for s in scores) / total if total else 0.0,
            "recall_similarity": similarity_name,
            "captioning": caption_metrics(records, self.references),
            "num_images": len(records),
        }


def build_parser() -> argparse.ArgumentParser:
    """Arguments of `sa2va-hf eval gcg`."""
    parser = argparse.ArgumentParser(
        prog="sa2va-hf eval gcg", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ann", required=True, type=Path, help="folder of {split}_gcg_coco_{mask,caption}_gt.json")
    parser.add_argument("--images", required=True, type=Path, help="folder of the GranD-f images")
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument(
        "--similarity", help="`module:function` (str, str) -> float for recall (default: bag of words)"
    )
    add_common_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Evaluate a model on GranD-f GCG; rank 0 writes `results.json` and prints the summary."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    similarity: Similarity = bag_of_words_similarity
    if args.similarity:
        module_name, _, attribute = args.similarity.partition(":")
        similarity = getattr(importlib.import_module(module_name), attribute)
    shard = Shard()
    evaluator = GCGEvaluator(args.ann, args.images, args.split, similarity)
    predictor = load_predictor(args, shard.device)
    records = run_items(
        evaluator.images[: args.limit],
        lambda image: evaluator.predict(predictor, image),
        lambda image: str(image["id"]),
        args.output,
        shard,
        f"gcg {args.split}",
    )
    if records is not None:
        summary = evaluator.summarize(records, args.similarity or "bag_of_words_similarity")
        path = write_results(args.output, summary, records, config_of(args, shard.world_size))
        print(json.dumps(summary), f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
