"""Referring image segmentation: RefCOCO, RefCOCO+, RefCOCOg and gRefCOCO in the REFER layout (official §7.1).

Layout of `--ann` (one dataset folder of the REFER API's `data/`)::

    refcoco/  refs(unc).p    instances.json      (refcoco+: same names; refcocog: refs(umd).p)
    grefcoco/ grefs(unc).json instances.json

Images are COCO train2014 files found under `--images` by `instances.json`'s `file_name`. One item per image; every
referring sentence is a query with the official prompt; a query's mask is the union of the returned masks when the
answer has `[SEG]`, else empty. Scores: cIoU (Σ I / Σ U, the published number) and gIoU (mean per-query IoU).

One process per GPU (or CPU processes, gloo), each taking every N-th image::

    accelerate launch --num_processes N -m sa2va_hf.evaluation.refcoco --dataset refcoco --ann refer/refcoco \\
        --images coco/train2014 --split val --model ByteDance/Sa2VA-InternVL3-2B --output runs/refcoco_val
    ACCELERATE_USE_CPU=1 CUDA_VISIBLE_DEVICES="" accelerate launch --multi_gpu --num_processes N \\
        -m sa2va_hf.evaluation.refcoco ...

(`accelerate launch --cpu` starts a single process.) An interrupted run resumes from `--output`.
"""

import argparse
import json
import logging
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from .distributed import Shard
from .metrics import ciou_from_counts, giou_from_counts, intersection_union
from .runner import Predictor, add_common_arguments, config_of, load_predictor, run_items, write_results


logger = logging.getLogger(__name__)

PROMPT = "<image>\n Please segment {sentence} in this image."
SEG_TOKEN = "[SEG]"
# dataset -> (refs file, its format)
REFS_FILES = {
    "refcoco": "refs(unc).p",
    "refcoco+": "refs(unc).p",
    "refcocog": "refs(umd).p",
    "grefcoco": "grefs(unc).json",
}


@dataclass
class Query:
    """One referring sentence and the annotation ids of its target (empty: no target, gRefCOCO)."""

    ref_id: int
    sentence: str
    ann_ids: list[int]


@dataclass
class ImageItem:
    """One image and every query about it."""

    image_id: int
    file_name: str
    height: int
    width: int
    queries: list[Query] = field(default_factory=list)


def _field(record: dict, key: str, path: Path, where: str):
    if not isinstance(record, dict) or key not in record:
        raise ValueError(f"{path}: {where} has no field {key!r}")
    return record[key]


def _read_refs(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: refs file not found (expected the REFER layout, see --help)")
    try:
        if path.suffix == ".p":
            with open(path, "rb") as f:
                refs = pickle.load(f)
        else:
            refs = json.loads(path.read_text())
    except (pickle.UnpicklingError, json.JSONDecodeError, EOFError) as error:
        raise ValueError(
            f"{path}: cannot be read as {'a pickle' if path.suffix == '.p' else 'JSON'}: {error}"
        ) from error
    if not isinstance(refs, list):
        raise ValueError(f"{path}: expected a list of refs, got {type(refs).__name__}")
    return refs


def load_refer(ann_dir: Path, dataset: str, split: str) -> tuple[list[ImageItem], dict[int, dict]]:
    """Read a REFER dataset folder: the images of `split` with their queries, and the COCO annotations by id.

    Raises:
        FileNotFoundError: when `refs(...)` or `instances.json` is missing.
        ValueError: when a file is malformed (naming the file and the field), or `split` has no refs (listing those
            that exist).
    """
    refs_path = ann_dir / REFS_FILES[dataset]
    refs = _read_refs(refs_path)
    instances_path = ann_dir / "instances.json"
    if not instances_path.is_file():
        raise FileNotFoundError(f"{instances_path}: COCO instances file not found")
    try:
        instances = json.loads(instances_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{instances_path}: not valid JSON: {error}") from error
    images = {
        _field(image, "id", instances_path, "images[]"): image
        for image in _field(instances, "images", instances_path, "the top level")
    }
    annotations = {
        _field(ann, "id", instances_path, "annotations[]"): ann
        for ann in _field(instances, "annotations", instances_path, "the top level")
    }
    items: dict[int, ImageItem] = {}
    splits = set()
    for index, ref in enumerate(refs):
        where = f"refs[{index}]"
        ref_split = _field(ref, "split", refs_path, where)
        splits.add(ref_split)
        if ref_split != split:
            continue
        image_id = _field(ref, "image_id", refs_path, where)
        if image_id not in images:
            raise ValueError(f"{refs_path}: {where} field 'image_id' = {image_id} is not an image of {instances_path}")
        ann_ids = _field(ref, "ann_id", refs_path, where)
        ann_ids = [a for a in (ann_ids if isinstance(ann_ids, list) else [ann_ids]) if a != -1]
        for ann_id in ann_ids:
            if ann_id not in annotations:
                raise ValueError(
                    f"{refs_path}: {where} field 'ann_id' = {ann_id} is not an annotation of {instances_path}"
                )
        if image_id not in items:
            image = images[image_id]
            items[image_id] = ImageItem(
                image_id=image_id,
                file_name=_field(image, "file_name", instances_path, f"images[id={image_id}]"),
                height=_field(image, "height", instances_path, f"images[id={image_id}]"),
                width=_field(image, "width", instances_path, f"images[id={image_id}]"),
            )
        for sent_index, sentence in enumerate(_field(ref, "sentences", refs_path, where)):
            text = _field(sentence, "sent", refs_path, f"{where}.sentences[{sent_index}]")
            items[image_id].queries.append(Query(_field(ref, "ref_id", refs_path, where), text, ann_ids))
    if not items:
        raise ValueError(f"{refs_path}: no refs in split {split!r}; the splits present are {sorted(splits)}")
    return list(items.values()), annotations


def target_mask(query: Query, annotations: dict[int, dict], height: int, width: int) -> np.ndarray:
    """The ground truth of a query: the union of its annotations' segmentations (polygons or RLE), `(H, W)` bool."""
    mask = np.zeros((height, width), dtype=bool)
    for ann_id in query.ann_ids:
        segmentation = annotations[ann_id]["segmentation"]
        if isinstance(segmentation, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        elif isinstance(segmentation.get("counts"), list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation
        mask |= mask_utils.decode(rle).astype(bool)
    return mask


def answer_mask(result: dict, height: int, width: int) -> np.ndarray:
    """The official reading of an answer: the union of all returned masks if it contains `[SEG]`, else empty."""
    mask = np.zeros((height, width), dtype=bool)
    if SEG_TOKEN in result["prediction"]:
        for masks in result["prediction_masks"]:
            mask |= np.asarray(masks, dtype=bool).reshape(-1, height, width).any(axis=0)
    return mask


def evaluate_image(item: ImageItem, predictor: Predictor, images_dir: Path, annotations: dict[int, dict]) -> dict:
    """Run every query of one image; return its per-query intersections, unions and answers."""
    image = Image.open(images_dir / item.file_name).convert("RGB")
    queries = []
    for query in item.queries:
        result = predictor.predict_forward(image=image, text=PROMPT.format(sentence=query.sentence))
        pred = answer_mask(result, image.height, image.width)
        gt = target_mask(query, annotations, image.height, image.width)
        inter, union = intersection_union([pred], [gt])
        queries.append(
            {
                "ref_id": query.ref_id,
                "sentence": query.sentence,
                "prediction": result["prediction"],
                "intersection": int(inter[0]),
                "union": int(union[0]),
            }
        )
    return {"image_id": item.image_id, "queries": queries}


def summarize(records: list[dict]) -> dict:
    """cIoU and gIoU (×100) over every query of every record."""
    queries = [query for record in records for query in record["queries"]]
    inter = np.array([q["intersection"] for q in queries], dtype=np.int64)
    union = np.array([q["union"] for q in queries], dtype=np.int64)
    return {
        "cIoU": 100 * ciou_from_counts(inter, union),
        "gIoU": 100 * giou_from_counts(inter, union),
        "num_images": len(records),
        "num_queries": len(queries),
    }


def build_parser() -> argparse.ArgumentParser:
    """Arguments of `sa2va-hf eval refcoco`."""
    parser = argparse.ArgumentParser(
        prog="sa2va-hf eval refcoco", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True, choices=sorted(REFS_FILES))
    parser.add_argument(
        "--ann", required=True, type=Path, help="the dataset's REFER folder (refs file + instances.json)"
    )
    parser.add_argument("--images", required=True, type=Path, help="folder of the COCO train2014 images")
    parser.add_argument("--split", default="val", help="val, testA, testB (unc), test (umd), ...")
    add_common_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Evaluate a model on a REFER split; rank 0 writes `results.json` and prints the summary."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    shard = Shard()
    items, annotations = load_refer(args.ann, args.dataset, args.split)
    items = items[: args.limit]
    predictor = load_predictor(args, shard.device)
    records = run_items(
        items,
        lambda item: evaluate_image(item, predictor, args.images, annotations),
        lambda item: str(item.image_id),
        args.output,
        shard,
        f"{args.dataset} {args.split}",
    )
    if records is not None:
        summary = summarize(records)
        path = write_results(args.output, summary, records, config_of(args, shard.world_size))
        print(json.dumps(summary), f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
