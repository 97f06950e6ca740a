"""Referring video object segmentation: MeViS, Ref-DAVIS17, ReVOS, Ref-YouTube-VOS and Ref-SAV (official §7.2).

Every dataset folder (`--root`) has the layout the official evaluation reads::

    JPEGImages/<video>/<frame>.jpg
    meta_expressions.json        {"videos": {video: {"frames": [frame, ...],
                                                      "expressions": {exp_id: {"exp": str, "anno_id": [int, ...]}}}}}
    mask_dict.json               {anno_id: [RLE or null per frame]}   (absent for server-scored splits)

ReVOS names its expressions `meta_expressions_valid_.json`, gives each a `type_id` (0 referring, 1 reasoning) and adds
`mask_dict_foreground.json` (`{video: {"masks_rle": [RLE per frame]}}`). `--meta` / `--masks` override the names
(relative to `--root`, `.json` or `.pkl`).

Every frame goes to the model with the official prompt; the first `[SEG]`'s masks are the prediction (none: empty).
With ground truth the run scores J, F and J&F (ReVOS also A and R, per type); without it, or with `--submit`, it
writes the server's format `Annotations/<video>/<exp_id>/<frame>.png` (0/255) under `--output`.
"""

import argparse
import json
import logging
import pickle
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from .distributed import Shard
from .metrics import j_and_f, revos_accuracy, revos_robustness, rle_decode
from .runner import Predictor, add_common_arguments, config_of, load_predictor, run_items, write_results


logger = logging.getLogger(__name__)

PROMPT = "<image>\nPlease segment {expression}."
QUESTION_PROMPT = "<image>\n {expression} Please respond with a segmentation mask."


@dataclass(frozen=True)
class Layout:
    """File names of one dataset's folder (relative to its root)."""

    meta: str = "meta_expressions.json"
    masks: str | None = "mask_dict.json"
    foreground: str | None = None


# fmt: off
LAYOUTS = {
    "mevis":    Layout(),
    "davis17":  Layout(),
    "refytvos": Layout(),
    "ref_sav":  Layout(),
    "revos":    Layout(meta="meta_expressions_valid_.json", foreground="mask_dict_foreground.json"),
}
# fmt: on


@dataclass(frozen=True)
class Expression:
    """One referring expression of one video."""

    video: str
    exp_id: str
    text: str
    frames: tuple[str, ...]
    anno_ids: tuple[int, ...]
    type_id: int | None


def prompt_for(expression: str) -> str:
    """The official prompt: a question (contains `?`) asks for a mask after it, anything else is `Please segment`."""
    if "?" in expression:
        return QUESTION_PROMPT.format(expression=expression)
    return PROMPT.format(expression=expression)


def _read(path: Path, what: str):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        if path.suffix == ".pkl":
            with open(path, "rb") as f:
                return pickle.load(f)
        return json.loads(path.read_text())
    except (json.JSONDecodeError, pickle.UnpicklingError, EOFError) as error:
        raise ValueError(f"{path}: cannot read {what}: {error}") from error


def _field(record, key: str, path: Path, where: str):
    if not isinstance(record, dict) or key not in record:
        raise ValueError(f"{path}: {where} has no field {key!r}")
    return record[key]


def load_expressions(meta_path: Path, need_annotations: bool, need_type: bool) -> list[Expression]:
    """Every (video, expression) of a `meta_expressions` file, in file order.

    Raises:
        ValueError: naming the file and the field that is missing.
    """
    meta = _read(meta_path, "expressions file")
    expressions = []
    for video, info in _field(meta, "videos", meta_path, "the top level").items():
        frames = tuple(_field(info, "frames", meta_path, f"videos[{video!r}]"))
        for exp_id, exp in _field(info, "expressions", meta_path, f"videos[{video!r}]").items():
            where = f"videos[{video!r}].expressions[{exp_id!r}]"
            anno_ids = _field(exp, "anno_id", meta_path, where) if need_annotations else exp.get("anno_id", [])
            type_id = _field(exp, "type_id", meta_path, where) if need_type else None
            text = _field(exp, "exp", meta_path, where)
            expressions.append(Expression(video, str(exp_id), text, frames, tuple(anno_ids), type_id))
    return expressions


@lru_cache(maxsize=1)
def _load_video(folder: Path, frames: tuple[str, ...]) -> list[Image.Image]:
    return [Image.open(folder / f"{frame}.jpg").convert("RGB") for frame in frames]


def predicted_masks(result: dict, num_frames: int, height: int, width: int) -> np.ndarray:
    """The first `[SEG]`'s masks `(num_frames, height, width)` bool, or all empty when the answer has none."""
    if not result["prediction_masks"]:
        return np.zeros((num_frames, height, width), dtype=bool)
    masks = np.asarray(result["prediction_masks"][0], dtype=bool)
    if masks.shape != (num_frames, height, width):
        raise ValueError(
            f"the predictor returned masks of shape {masks.shape}, expected {(num_frames, height, width)}"
        )
    return masks


def ground_truth(expression: Expression, mask_dict: dict, masks_path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The union of the expression's annotated objects per frame, `(num_frames, height, width)` bool."""
    gt = np.zeros((len(expression.frames), *shape), dtype=bool)
    for anno_id in expression.anno_ids:
        per_frame = _field(mask_dict, str(anno_id), masks_path, "the top level")
        if len(per_frame) != len(expression.frames):
            raise ValueError(
                f"{masks_path}: field {str(anno_id)!r} has {len(per_frame)} frames, video {expression.video!r} has "
                f"{len(expression.frames)}"
            )
        for index, rle in enumerate(per_frame):
            if rle:
                gt[index] |= rle_decode(rle)
    return gt


class RefVOSEvaluator:
    """Predicts one expression and scores it (or writes its submission PNGs).

    The dataset files are read and checked at construction, so the predictor (a model load) may be set afterwards.
    """

    def __init__(self, args: argparse.Namespace, predictor: Predictor | None = None) -> None:
        layout = LAYOUTS[args.dataset]
        self.root: Path = args.root
        self.predictor = predictor
        self.output: Path = args.output
        masks_name = args.masks or layout.masks
        self.masks_path = self.root / masks_name if masks_name else None
        has_masks = self.masks_path is not None and self.masks_path.is_file()
        self.submit = args.submit or not has_masks
        if not has_masks and not args.submit:
            logger.info("no ground truth at %s: writing the submission format only", self.masks_path)
        self.mask_dict = None if self.submit else _read(self.masks_path, "mask file")
        self.foreground_path = self.root / layout.foreground if layout.foreground and not self.submit else None
        self.foreground = _read(self.foreground_path, "foreground mask file") if self.foreground_path else None
        self.bound_th = args.bound_th
        self.expressions = load_expressions(
            self.root / (args.meta or layout.meta),
            need_annotations=not self.submit,
            need_type=self.foreground is not None,
        )

    def __call__(self, expression: Expression) -> dict:
        """Predict `expression` over all its frames; return its scores (or the number of PNGs written)."""
        frames = _load_video(self.root / "JPEGImages" / expression.video, expression.frames)
        width, height = frames[0].size
        result = self.predictor.predict_forward(video=frames, text=prompt_for(expression.text))
        masks = predicted_masks(result, len(frames), height, width)
        record = {"video": expression.video, "exp_id": expression.exp_id, "prediction": result["prediction"]}
        if self.submit:
            folder = self.output / "Annotations" / expression.video / expression.exp_id
            folder.mkdir(parents=True, exist_ok=True)
            for frame, mask in zip(expression.frames, masks):
                Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{frame}.png")
            return {**record, "frames_written": len(frames)}
        gt = ground_truth(expression, self.mask_dict, self.masks_path, (height, width))
        record.update(j_and_f(masks, gt, self.bound_th))
        if self.foreground is not None:
            video_fg = _field(self.foreground, expression.video, self.foreground_path, "the top level")
            rles = _field(video_fg, "masks_rle", self.foreground_path, f"[{expression.video!r}]")
            foreground = np.stack([rle_decode(rle) for rle in rles])
            record.update(
                type_id=expression.type_id, A=revos_accuracy(masks, gt), R=revos_robustness(masks, gt, foreground)
            )
        return record


def summarize(records: list[dict], dataset: str, submit: bool) -> dict:
    """Dataset scores ×100: J, F, J&F over expressions; ReVOS per type (referring 0, reason 1) and their average."""
    if submit:
        return {"num_expressions": len(records), "submission": "Annotations/"}

    def mean_scores(subset: list[dict], keys: tuple[str, ...]) -> dict:
        scores = {key: 100 * float(np.mean([r[key] for r in subset])) if subset else float("nan") for key in keys}
        scores["J&F"] = (scores["J"] + scores["F"]) / 2
        return scores

    if dataset != "revos":
        return {**mean_scores(records, ("J", "F")), "num_expressions": len(records)}
    keys = ("J", "F", "A", "R")
    referring = mean_scores([r for r in records if r["type_id"] == 0], keys)
    reason = mean_scores([r for r in records if r["type_id"] == 1], keys)
    overall = {key: (referring[key] + reason[key]) / 2 for key in referring}
    return {"referring": referring, "reason": reason, "overall": overall, "num_expressions": len(records)}


def build_parser() -> argparse.ArgumentParser:
    """Arguments of `sa2va-hf eval refvos`."""
    parser = argparse.ArgumentParser(prog="sa2va-hf eval refvos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, choices=sorted(LAYOUTS))
    parser.add_argument("--root", required=True, type=Path, help="the split's folder (JPEGImages/, meta, masks)")
    parser.add_argument("--meta", help="expressions file name under --root (default: the dataset's)")
    parser.add_argument("--masks", help="ground-truth mask file name under --root (default: mask_dict.json)")
    parser.add_argument("--submit", action="store_true", help="write Annotations/ PNGs for the server, do not score")
    parser.add_argument("--bound-th", type=float, default=0.008, help="F tolerance (fraction of the diagonal)")
    add_common_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Evaluate a model on a referring-VOS split; rank 0 writes `results.json` and prints the summary."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    shard = Shard()
    evaluator = RefVOSEvaluator(args)
    evaluator.predictor = load_predictor(args, shard.device)
    items = evaluator.expressions[: args.limit]
    records = run_items(
        items, evaluator, lambda e: f"{e.video}/{e.exp_id}", args.output, shard, f"{args.dataset} refvos"
    )
    if records is not None:
        summary = summarize(records, args.dataset, evaluator.submit)
        path = write_results(args.output, summary, records, config_of(args, shard.world_size))
        print(json.dumps(summary), f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
