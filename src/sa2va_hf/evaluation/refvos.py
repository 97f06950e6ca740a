"""Referring video object segmentation: MeViS, Ref-DAVIS17, ReVOS, Ref-YouTube-VOS and Ref-SAV (official §7.2).

`--root` is the dataset folder of the official `data/` tree; below it, the files the official evaluation reads
(checked against `sa2va_eval_ref_vos.py` and `tools/eval/eval_*.py`)::

    mevis     (mevis/valid_u, or mevis/valid for the server)  JPEGImages/<video>/<frame>.jpg
              meta_expressions.json   mask_dict.json (valid_u only)
    davis17   (davis17)       valid/JPEGImages/  meta_expressions/valid/meta_expressions.json  valid/mask_dict.pkl
    refytvos  (rvos)          valid/JPEGImages/  meta_expressions/valid/meta_expressions.json  (server only)
    revos     (revos)         <video>/<frame>.jpg directly under the root  meta_expressions_valid_.json
              mask_dict.json  mask_dict_foreground.json
    ref_sav   (ref_sav_eval)  videos/<video>/<frame>.jpg  meta_expressions_valid.json  mask_dict.json

Every expressions file is `{"videos": {video: {"frames": [frame, ...], "expressions": {exp_id: {"exp": str,
"anno_id": [int, ...]}}}}}`; a mask file maps `str(anno_id)` to one COCO RLE (or null: absent) per frame. Ref-DAVIS17's
expressions carry no `anno_id`: its scorer numbers the expressions 0, 1, ... over the videos and then the expression
ids, both sorted, and that number is the key of `mask_dict.pkl`; each expression (of either annotator) is scored on
its own and the score is the mean over all expressions. ReVOS and Ref-SAV give each expression a `type_id` and report
each type and the mean of the types: ReVOS referring (0) and reasoning (1) with J, F, A and R (R needs
`mask_dict_foreground.json`, `{video: {"masks_rle": [RLE per frame]}}`; type 2 is left out of every group), Ref-SAV
long (0) and short (1) with J, F and A. The MeViS test split is `--meta meta_expressions_release.json`. `--meta`,
`--masks` and `--frames` override the names (relative to `--root`; masks `.json` or `.pkl`).

As in the official inference, a video's frames and expression ids are sorted; every frame goes to the model with the
official prompt; the first `[SEG]`'s masks are the prediction (none: empty). With ground truth the run scores J, F and
J&F per expression; without it, or with `--submit`, it writes the servers' format (MeViS valid and Ref-YouTube-VOS
valid, on CodaLab): `Annotations/<video>/<exp_id>/<frame>.png` (0/255) under `--output`, and `submission.zip` holding
that `Annotations/` folder at its top level (what `zip -r submission.zip Annotations` makes), the file to upload.

One process per GPU (or CPU processes, gloo), each taking every N-th expression::

    accelerate launch --num_processes N -m sa2va_hf.evaluation.refvos --dataset mevis --root data/mevis/valid_u \\
        --model ByteDance/Sa2VA-InternVL3-2B --output runs/mevis_valid_u
    ACCELERATE_USE_CPU=1 CUDA_VISIBLE_DEVICES="" accelerate launch --multi_gpu --num_processes N \\
        -m sa2va_hf.evaluation.refvos ...

(`accelerate launch --cpu` starts a single process.) An interrupted run resumes from `--output`.
"""

import argparse
import json
import logging
import pickle
import sys
import zipfile
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
    """File names of one dataset's folder (relative to its root) and how it is scored.

    Args:
        meta (`str`): the expressions file.
        frames (`str`): the folder of `<video>/<frame>.jpg`.
        masks (`str`, *optional*): the ground-truth mask file (none: server-scored).
        foreground (`str`, *optional*): ReVOS's per-video foreground masks (for R).
        groups (`tuple[str, ...]`): names of `type_id` 0, 1, ... reported separately (empty: one group).
        numbered_expressions (`bool`): the expressions have no `anno_id`; their running number is the mask key.
    """

    meta: str
    frames: str
    masks: str | None
    foreground: str | None = None
    groups: tuple[str, ...] = ()
    numbered_expressions: bool = False


LAYOUTS = {
    "mevis": Layout(meta="meta_expressions.json", frames="JPEGImages", masks="mask_dict.json"),
    "davis17": Layout(
        meta="meta_expressions/valid/meta_expressions.json",
        frames="valid/JPEGImages",
        masks="valid/mask_dict.pkl",
        numbered_expressions=True,
    ),
    "refytvos": Layout(meta="meta_expressions/valid/meta_expressions.json", frames="valid/JPEGImages", masks=None),
    "revos": Layout(
        meta="meta_expressions_valid_.json",
        frames=".",
        masks="mask_dict.json",
        foreground="mask_dict_foreground.json",
        groups=("referring", "reason"),
    ),
    "ref_sav": Layout(
        meta="meta_expressions_valid.json", frames="videos", masks="mask_dict.json", groups=("long", "short")
    ),
}


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


def load_expressions(
    meta_path: Path, need_annotations: bool, need_type: bool, numbered: bool = False
) -> list[Expression]:
    """Every (video, expression) of an expressions file: videos in file order, frames and expression ids sorted.

    Args:
        meta_path (`Path`): the expressions file.
        need_annotations (`bool`): require each expression's `anno_id` (the ground truth is scored).
        need_type (`bool`): require each expression's `type_id` (grouped scores).
        numbered (`bool`): Ref-DAVIS17: the annotation id of an expression is its running number over the sorted
            videos and sorted expression ids (`anno_id` is not read).

    Raises:
        ValueError: naming the file and the field that is missing.
    """
    meta = _read(meta_path, "expressions file")
    videos = _field(meta, "videos", meta_path, "the top level")
    if not isinstance(videos, dict):
        raise ValueError(f"{meta_path}: field 'videos' must map video names to videos, got {type(videos).__name__}")
    numbers = {}
    if numbered:
        for video in sorted(videos):
            for exp_id in sorted(_field(videos[video], "expressions", meta_path, f"videos[{video!r}]")):
                numbers[video, exp_id] = [len(numbers)]
    expressions = []
    for video, info in videos.items():
        frames = tuple(sorted(_field(info, "frames", meta_path, f"videos[{video!r}]")))
        exps = _field(info, "expressions", meta_path, f"videos[{video!r}]")
        for exp_id in sorted(exps):
            exp = exps[exp_id]
            where = f"videos[{video!r}].expressions[{exp_id!r}]"
            if numbered:
                anno_ids = numbers[video, exp_id]
            elif need_annotations:
                anno_ids = _field(exp, "anno_id", meta_path, where)
            else:
                anno_ids = exp.get("anno_id", [])
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
        self.layout = LAYOUTS[args.dataset]
        self.root: Path = args.root
        self.frames_dir = self.root / (args.frames or self.layout.frames)
        self.predictor = predictor
        self.output: Path = args.output
        masks_name = args.masks or self.layout.masks
        self.masks_path = self.root / masks_name if masks_name else None
        has_masks = self.masks_path is not None and self.masks_path.is_file()
        self.submit = args.submit or not has_masks
        if not has_masks and not args.submit:
            logger.info("no ground truth at %s: writing the submission format only", self.masks_path)
        self.mask_dict = None if self.submit else _read(self.masks_path, "mask file")
        foreground = self.layout.foreground
        self.foreground_path = self.root / foreground if foreground and not self.submit else None
        self.foreground = _read(self.foreground_path, "foreground mask file") if self.foreground_path else None
        self.bound_th = args.bound_th
        self.expressions = load_expressions(
            self.root / (args.meta or self.layout.meta),
            need_annotations=not self.submit,
            need_type=bool(self.layout.groups) and not self.submit,
            numbered=self.layout.numbered_expressions,
        )

    def __call__(self, expression: Expression) -> dict:
        """Predict `expression` over all its frames; return its scores (or the number of PNGs written)."""
        frames = _load_video(self.frames_dir / expression.video, expression.frames)
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
        if self.layout.groups:
            record.update(type_id=expression.type_id, A=revos_accuracy(masks, gt))
        if self.foreground is not None:
            video_fg = _field(self.foreground, expression.video, self.foreground_path, "the top level")
            rles = _field(video_fg, "masks_rle", self.foreground_path, f"[{expression.video!r}]")
            record["R"] = revos_robustness(masks, gt, np.stack([rle_decode(rle) for rle in rles]))
        return record


def write_submission_zip(output: Path) -> Path:
    """Zip `output/Annotations/` (kept as the archive's top folder) into `output/submission.zip` for the server."""
    path = output / "submission.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for png in sorted((output / "Annotations").rglob("*.png")):
            archive.write(png, png.relative_to(output).as_posix())
    return path


def summarize(records: list[dict], layout: Layout, submit: bool) -> dict:
    """Dataset scores ×100: J, F and J&F averaged over expressions.

    Grouped datasets (ReVOS, Ref-SAV) are scored per `type_id` group and as the mean of the groups; other `type_id`s
    (ReVOS's 2) are in no group.
    """
    if submit:
        return {"num_expressions": len(records), "submission": "submission.zip"}

    def mean_scores(subset: list[dict], keys: tuple[str, ...]) -> dict:
        scores = {key: 100 * float(np.mean([r[key] for r in subset])) if subset else float("nan") for key in keys}
        scores["J&F"] = (scores["J"] + scores["F"]) / 2
        return scores

    if not layout.groups:
        return {**mean_scores(records, ("J", "F")), "num_expressions": len(records)}
    keys = ("J", "F", "A", "R") if layout.foreground else ("J", "F", "A")
    groups = {
        name: mean_scores([r for r in records if r["type_id"] == type_id], keys)
        for type_id, name in enumerate(layout.groups)
    }
    overall = {key: float(np.mean([group[key] for group in groups.values()])) for key in (*keys, "J&F")}
    return {**groups, "overall": overall, "num_expressions": len(records)}


def build_parser() -> argparse.ArgumentParser:
    """Arguments of `sa2va-hf eval refvos`."""
    parser = argparse.ArgumentParser(
        prog="sa2va-hf eval refvos", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True, choices=sorted(LAYOUTS))
    parser.add_argument("--root", required=True, type=Path, help="the dataset's folder (see the layouts above)")
    parser.add_argument("--meta", help="expressions file under --root (default: the dataset's)")
    parser.add_argument("--masks", help="ground-truth mask file under --root (default: the dataset's)")
    parser.add_argument("--frames", help="folder of <video>/<frame>.jpg under --root (default: the dataset's)")
    parser.add_argument(
        "--submit", action="store_true", help="write Annotations/ PNGs and submission.zip for the server; no scores"
    )
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
        summary = summarize(records, evaluator.layout, evaluator.submit)
        if evaluator.submit:
            write_submission_zip(args.output)
        path = write_results(args.output, summary, records, config_of(args, shard.world_size))
        print(json.dumps(summary), f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
