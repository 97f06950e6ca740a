"""Evaluation runners on small synthetic datasets written in the official layouts, with oracle predictors."""

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sa2va_hf.evaluation import gcg, refcoco, refvos
from sa2va_hf.evaluation.metrics import rle_decode, rle_encode


ORACLE_SOURCE = '''
"""Test predictors: return the ground truth of each prompt (perfect), a 1-px shift of it, or nothing."""
import json
import os

import numpy as np

from sa2va_hf.evaluation.metrics import rle_decode


class Oracle:
    def __init__(self, mode):
        with open(os.environ["SA2VA_ORACLE_TRUTH"]) as f:
            self.truth = json.load(f)
        self.mode = mode

    def predict_forward(self, image=None, video=None, text=""):
        if self.mode == "empty":
            return {"prediction": "I cannot find it.", "prediction_masks": []}
        masks = np.stack([rle_decode(rle) for rle in self.truth[text]])
        if self.mode == "shifted":
            masks = np.roll(masks, 1, axis=-1)
        return {"prediction": "Sure, [SEG].", "prediction_masks": [masks]}


def perfect():
    return Oracle("perfect")


def shifted():
    return Oracle("shifted")


def empty():
    return Oracle("empty")


class GCGOracle:
    """Answers the GCG prompt with the image's ground-truth phrases and masks (looked up by `<width>x<height>`)."""

    def __init__(self, mode):
        with open(os.environ["SA2VA_ORACLE_TRUTH"]) as f:
            self.truth = json.load(f)
        self.mode = mode

    def predict_forward(self, image=None, text=""):
        if self.mode == "empty":
            return {"prediction": "A picture.", "prediction_masks": []}
        regions = self.truth[f"{image.width}x{image.height}"]
        answer = " and ".join(f"<p>{r['label']}</p> [SEG]" for r in regions) + "."
        masks = [rle_decode(r["segmentation"])[None] for r in regions]
        if self.mode == "shifted":
            masks = [np.roll(m, 2 * i + 1, axis=-1) for i, m in enumerate(masks)]
        return {"prediction": answer, "prediction_masks": masks}


def gcg_perfect():
    return GCGOracle("perfect")


def gcg_shifted():
    return GCGOracle("shifted")


def gcg_empty():
    return GCGOracle("empty")


def tiny():
    from sa2va_hf.evaluation.runner import ModelPredictor
    from sa2va_hf.tiny import build_tiny_model

    model, processor = build_tiny_model("internvl", seed=0)
    return ModelPredictor(model, processor, sequence_bias={(processor.seg_token_id,): 8.0}, max_new_tokens=3)
'''


@pytest.fixture
def oracle(tmp_path, monkeypatch):
    """Writes the oracle module; returns `(truth dict to fill, env for subprocesses)`."""
    folder = tmp_path / "oracle_module"
    folder.mkdir()
    (folder / "sa2va_test_oracle.py").write_text(ORACLE_SOURCE)
    monkeypatch.syspath_prepend(str(folder))
    truth_path = tmp_path / "truth.json"
    monkeypatch.setenv("SA2VA_ORACLE_TRUTH", str(truth_path))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), *sys.path])}
    env.update(ACCELERATE_USE_CPU="1", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    truth: dict = {}
    yield truth, env
    sys.modules.pop("sa2va_test_oracle", None)


def save_truth(truth: dict) -> None:
    Path(os.environ["SA2VA_ORACLE_TRUTH"]).write_text(json.dumps(truth))


def launch_two(env: dict, module: str, argv: list[str], output: Path) -> dict:
    """Run `module` in 2 CPU processes with `accelerate launch --multi_gpu` (`--cpu` would start only one)."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += ["-m", module, *argv, "--output", str(output)]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads((output / "results.json").read_text())
    assert result["config"]["num_processes"] == 2
    assert sorted(p.name for p in output.glob("records.rank*.jsonl")) == ["records.rank0.jsonl", "records.rank1.jsonl"]
    return result


# ---------------------------------------------------------------- RefCOCO (REFER layout)


def write_refer(root: Path, dataset: str, truth: dict) -> Path:
    """Three 24x32 images; polygon, RLE and (gRefCOCO) no-target annotations; splits val and testA."""
    ann_dir, images_dir = root / dataset, root / "train2014"
    ann_dir.mkdir(parents=True)
    images_dir.mkdir()
    rng = np.random.default_rng(0)
    images, annotations, refs = [], [], []
    for image_id in (1, 2, 3):
        name = f"COCO_train2014_{image_id:012d}.jpg"
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(images_dir / name)
        images.append({"id": image_id, "file_name": name, "height": 24, "width": 32})
        polygon = [[2.0 + image_id, 2.0, 20.0, 2.0, 20.0, 15.0, 2.0 + image_id, 15.0]]
        blob = np.zeros((24, 32), bool)
        blob[10:20, 15 + image_id : 30] = True
        annotations += [
            {"id": 10 * image_id, "image_id": image_id, "segmentation": polygon, "category_id": 1},
            {"id": 10 * image_id + 1, "image_id": image_id, "segmentation": rle_encode(blob), "category_id": 1},
        ]
        for k, ann_ids in enumerate([[10 * image_id], [10 * image_id + 1], [10 * image_id, 10 * image_id + 1]]):
            if dataset != "grefcoco":
                ann_ids = ann_ids[0]
            elif k == 2 and image_id == 3:
                ann_ids = [-1]  # no target
            refs.append(
                {
                    "ref_id": 100 * image_id + k,
                    "image_id": image_id,
                    "ann_id": ann_ids,
                    "split": "val" if image_id < 3 or dataset == "grefcoco" else "testA",
                    "sentences": [{"sent": f"thing {image_id} {k} a"}, {"sent": f"thing {image_id} {k} b"}],
                }
            )
    (ann_dir / "instances.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    refs_path = ann_dir / refcoco.REFS_FILES[dataset]
    if dataset == "grefcoco":
        refs_path.write_text(json.dumps(refs))
    else:
        refs_path.write_bytes(pickle.dumps(refs))
    items, anns = refcoco.load_refer(ann_dir, dataset, "val")
    for item in items:
        for query in item.queries:
            mask = refcoco.target_mask(query, anns, item.height, item.width)
            truth[refcoco.PROMPT.format(sentence=query.sentence)] = [rle_encode(mask)]
    save_truth(truth)
    return ann_dir


def run_refcoco(ann_dir: Path, dataset: str, predictor: str, output: Path) -> dict:
    argv = ["--dataset", dataset, "--ann", str(ann_dir), "--images", str(ann_dir.parent / "train2014")]
    assert refcoco.main([*argv, "--split", "val", "--predictor", predictor, "--output", str(output)]) == 0
    return json.loads((output / "results.json").read_text())


@pytest.mark.parametrize("dataset", ["refcoco", "grefcoco"])
def test_refcoco_perfect_and_empty(tmp_path, oracle, dataset):
    truth, _ = oracle
    ann_dir = write_refer(tmp_path, dataset, truth)
    perfect = run_refcoco(ann_dir, dataset, "sa2va_test_oracle:perfect", tmp_path / "perfect")
    assert perfect["summary"]["cIoU"] == pytest.approx(100)
    assert perfect["summary"]["gIoU"] == pytest.approx(100, abs=1e-3)  # official I / (U + 1e-5)
    num_queries = 12 if dataset == "refcoco" else 18
    assert perfect["summary"]["num_queries"] == num_queries
    assert perfect["config"]["split"] == "val" and len(perfect["items"]) == perfect["summary"]["num_images"]
    empty = run_refcoco(ann_dir, dataset, "sa2va_test_oracle:empty", tmp_path / "empty")
    # No prediction: cIoU 0; gIoU counts only the no-target queries (empty union) as 1.
    assert empty["summary"]["cIoU"] == 0.0
    assert empty["summary"]["gIoU"] == pytest.approx(100 * (2 / 18 if dataset == "grefcoco" else 0))


def test_refcoco_resumes(tmp_path, oracle):
    truth, _ = oracle
    ann_dir = write_refer(tmp_path, "refcoco", truth)
    output = tmp_path / "run"
    argv = ["--dataset", "refcoco", "--ann", str(ann_dir), "--images", str(ann_dir.parent / "train2014")]
    argv += ["--predictor", "sa2va_test_oracle:perfect", "--output", str(output)]
    refcoco.main([*argv, "--limit", "1"])
    refcoco.main(argv)
    lines = (output / "records.rank0.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["1", "2"]  # image 1 was not redone


def test_refcoco_two_processes_match_one(tmp_path, oracle):
    truth, env = oracle
    ann_dir = write_refer(tmp_path, "grefcoco", truth)
    argv = ["--dataset", "grefcoco", "--ann", str(ann_dir), "--images", str(ann_dir.parent / "train2014")]
    argv += ["--split", "val", "--predictor", "sa2va_test_oracle:shifted"]
    one = run_refcoco(ann_dir, "grefcoco", "sa2va_test_oracle:shifted", tmp_path / "one")
    two = launch_two(env, "sa2va_hf.evaluation.refcoco", argv, tmp_path / "two")
    assert 0 < one["summary"]["cIoU"] < 100
    assert two["summary"] == one["summary"] and two["items"] == one["items"]


def test_refcoco_errors_name_file_and_field(tmp_path, oracle):
    truth, _ = oracle
    ann_dir = write_refer(tmp_path, "refcoco", truth)
    with pytest.raises(ValueError, match=r"no refs in split 'test'; the splits present are \['testA', 'val'\]"):
        refcoco.load_refer(ann_dir, "refcoco", "test")
    refs_path = ann_dir / "refs(unc).p"
    refs = pickle.loads(refs_path.read_bytes())
    del refs[1]["sentences"]
    refs_path.write_bytes(pickle.dumps(refs))
    with pytest.raises(ValueError, match=r"refs\(unc\)\.p: refs\[1\] has no field 'sentences'"):
        refcoco.load_refer(ann_dir, "refcoco", "val")
    (ann_dir / "instances.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match=r"instances\.json: the top level has no field 'annotations'"):
        refcoco.load_refer(ann_dir, "refcoco", "val")
    refs_path.unlink()
    with pytest.raises(FileNotFoundError, match=r"refs\(unc\)\.p"):
        refcoco.load_refer(ann_dir, "refcoco", "val")


# ---------------------------------------------------------------- referring VOS (the official layouts of each dataset)


def write_vos(root: Path, dataset: str, truth: dict, with_masks: bool = True) -> Path:
    """Two videos of 3 frames (20x28), two expressions each (one a question, `type_id` 1), GT with empty frames.

    Written in `refvos.LAYOUTS[dataset]`'s file names, with videos and expression ids out of sorted order (the
    official evaluation sorts them; Ref-DAVIS17's mask keys are the running numbers of the sorted expressions).
    """
    layout = refvos.LAYOUTS[dataset]
    rng = np.random.default_rng(1)
    videos, mask_dict, foreground = {}, {}, {}
    for v in (1, 0):
        video = f"vid{v}"
        frames = [f"{i:05d}" for i in range(3)]
        (root / layout.frames / video).mkdir(parents=True)
        for frame in frames:
            image = rng.integers(0, 255, (20, 28, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / layout.frames / video / f"{frame}.jpg")
        expressions = {}
        video_fg = np.zeros((3, 20, 28), bool)
        for e, text in ((1, f"which thing moves in video {v}?"), (0, f"the cat {v}")):
            anno_id = 2 * v + e  # = the running number over sorted videos and expression ids
            per_frame, masks = [], np.zeros((3, 20, 28), bool)
            for i in range(3):
                if (v + e + i) % 3 == 2:
                    per_frame.append(None)  # object absent from this frame
                else:
                    masks[i, 2 + i : 12 + e, 3 + 5 * e : 15 + v] = True
                    per_frame.append(rle_encode(masks[i]))
            mask_dict[str(anno_id)] = per_frame
            video_fg |= masks
            expressions[str(e)] = {"exp": text, "obj_id": [e], "type_id": e}
            if not layout.numbered_expressions:
                expressions[str(e)]["anno_id"] = [anno_id]
            truth[refvos.prompt_for(text)] = [rle_encode(m) for m in masks]
        videos[video] = {"frames": frames, "expressions": expressions}
        foreground[video] = {"masks_rle": [rle_encode(m) for m in video_fg]}
    (root / layout.meta).parent.mkdir(parents=True, exist_ok=True)
    (root / layout.meta).write_text(json.dumps({"videos": videos}))
    if with_masks:
        masks_path = root / layout.masks
        masks_path.parent.mkdir(parents=True, exist_ok=True)
        if masks_path.suffix == ".pkl":
            masks_path.write_bytes(pickle.dumps(mask_dict))
        else:
            masks_path.write_text(json.dumps(mask_dict))
    if layout.foreground:
        (root / layout.foreground).write_text(json.dumps(foreground))
    save_truth(truth)
    return root


def run_vos(root: Path, dataset: str, predictor: str, output: Path, *extra: str) -> dict:
    argv = ["--dataset", dataset, "--root", str(root), "--predictor", predictor, "--output", str(output), *extra]
    assert refvos.main(argv) == 0
    return json.loads((output / "results.json").read_text())


def empty_prediction_scores(truth: dict) -> float:
    """J = F for empty predictions: per expression, the fraction of frames whose GT is empty."""
    return 100 * float(np.mean([np.mean([not rle_decode(r).any() for r in rles]) for rles in truth.values()]))


def test_prompts_follow_the_official_evaluation():
    assert refvos.prompt_for("the cat") == "<image>\nPlease segment the cat."
    assert refvos.prompt_for("what moves?") == "<image>\n what moves? Please respond with a segmentation mask."
    assert refcoco.PROMPT.format(sentence="man") == "<image>\n Please segment man in this image."


@pytest.mark.parametrize("dataset", ["mevis", "davis17"])
def test_vos_perfect_and_empty(tmp_path, oracle, dataset):
    truth, _ = oracle
    root = write_vos(tmp_path / dataset, dataset, truth)
    perfect = run_vos(root, dataset, "sa2va_test_oracle:perfect", tmp_path / "perfect")
    assert perfect["summary"] == {"J": 100.0, "F": 100.0, "J&F": 100.0, "num_expressions": 4}
    assert [item["id"] for item in perfect["items"]] == ["vid1/0", "vid1/1", "vid0/0", "vid0/1"]
    empty = run_vos(root, dataset, "sa2va_test_oracle:empty", tmp_path / "empty")["summary"]
    expected = empty_prediction_scores(truth)
    assert 0 < expected < 100
    assert empty["J"] == pytest.approx(expected) and empty["F"] == pytest.approx(expected)


def test_revos_perfect_and_empty(tmp_path, oracle):
    truth, _ = oracle
    root = write_vos(tmp_path / "revos", "revos", truth)
    assert (root / "vid0" / "00000.jpg").is_file()  # ReVOS: frames directly under the root
    perfect = run_vos(root, "revos", "sa2va_test_oracle:perfect", tmp_path / "perfect")["summary"]
    for group in ("referring", "reason", "overall"):
        assert perfect[group] == {"J": 100.0, "F": 100.0, "A": 100.0, "R": 100.0, "J&F": 100.0}
    empty = run_vos(root, "revos", "sa2va_test_oracle:empty", tmp_path / "empty")["summary"]
    assert empty["overall"]["R"] == pytest.approx(100)  # no false positives
    assert empty["overall"]["J"] == pytest.approx(empty_prediction_scores(truth))
    gt_fraction = np.mean([np.mean([rle_decode(r).mean() if r else 0 for r in rles]) for rles in truth.values()])
    assert empty["overall"]["A"] == pytest.approx(100 * (1 - gt_fraction))


def test_ref_sav_groups_long_and_short(tmp_path, oracle):
    truth, _ = oracle
    root = write_vos(tmp_path / "ref_sav_eval", "ref_sav", truth)
    perfect = run_vos(root, "ref_sav", "sa2va_test_oracle:perfect", tmp_path / "perfect")["summary"]
    for group in ("long", "short", "overall"):
        assert perfect[group] == {"J": 100.0, "F": 100.0, "A": 100.0, "J&F": 100.0}
    empty = run_vos(root, "ref_sav", "sa2va_test_oracle:empty", tmp_path / "empty")["summary"]
    assert empty["overall"]["J"] == pytest.approx(empty_prediction_scores(truth))


def test_server_split_writes_submission_pngs(tmp_path, oracle):
    truth, _ = oracle
    root = write_vos(tmp_path / "rvos", "refytvos", truth, with_masks=False)
    result = run_vos(root, "refytvos", "sa2va_test_oracle:perfect", tmp_path / "sub")
    assert result["summary"] == {"num_expressions": 4, "submission": "submission.zip"}
    expected = rle_decode(truth[refvos.prompt_for("which thing moves in video 0?")][1]) * 255
    png = np.array(Image.open(tmp_path / "sub" / "Annotations" / "vid0" / "1" / "00001.png"))
    np.testing.assert_array_equal(png, expected)
    with zipfile.ZipFile(tmp_path / "sub" / "submission.zip") as archive:
        names = archive.namelist()
        zipped = np.array(Image.open(io.BytesIO(archive.read("Annotations/vid0/1/00001.png"))))
    assert len(names) == 4 * 3 and all(name.startswith("Annotations/vid") for name in names)
    np.testing.assert_array_equal(zipped, expected)


def test_vos_errors_name_file_and_field(tmp_path, oracle):
    truth, _ = oracle
    root = write_vos(tmp_path / "mevis", "mevis", truth)
    meta_path = root / "meta_expressions.json"
    meta = json.loads(meta_path.read_text())
    del meta["videos"]["vid1"]["expressions"]["0"]["anno_id"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(
        ValueError, match=r"meta_expressions\.json: videos\['vid1'\]\.expressions\['0'\] has no field 'anno_id'"
    ):
        refvos.load_expressions(meta_path, need_annotations=True, need_type=False)
    meta_path.write_text("{not json")
    with pytest.raises(ValueError, match=r"meta_expressions\.json: cannot read expressions file"):
        refvos.load_expressions(meta_path, need_annotations=True, need_type=False)
    with pytest.raises(FileNotFoundError, match=r"nothing\.json: expressions file not found"):
        refvos.load_expressions(root / "nothing.json", need_annotations=True, need_type=False)
    revos_meta = write_vos(tmp_path / "revos", "revos", truth) / "meta_expressions_valid_.json"
    meta = json.loads(revos_meta.read_text())
    del meta["videos"]["vid0"]["expressions"]["1"]["type_id"]
    revos_meta.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"valid_\.json: videos\['vid0'\]\.expressions\['1'\] has no field 'type_id'"):
        refvos.load_expressions(revos_meta, need_annotations=True, need_type=True)


def test_vos_two_processes_match_one(tmp_path, oracle):
    truth, env = oracle
    root = write_vos(tmp_path / "revos", "revos", truth)
    one = run_vos(root, "revos", "sa2va_test_oracle:shifted", tmp_path / "one")
    argv = ["--dataset", "revos", "--root", str(root), "--predictor", "sa2va_test_oracle:shifted"]
    two = launch_two(env, "sa2va_hf.evaluation.refvos", argv, tmp_path / "two")
    assert 0 < one["summary"]["overall"]["J&F"] < 100
    assert two["summary"] == one["summary"] and two["items"] == one["items"]


# ---------------------------------------------------------------- GCG (GranD-f layout)


def write_grandf(root: Path, truth: dict) -> tuple[Path, Path]:
    """Two images, two regions each: `val_gcg_coco_{caption,mask}_gt.json` under `ann/`, `<id>.jpg` under `images/`."""
    ann_dir, images_dir = root / "ann", root / "images"
    ann_dir.mkdir(parents=True)
    images_dir.mkdir()
    images, masks, captions = [], [], []
    for index, width in ((1, 30), (2, 34)):
        image_id = f"sa_{index}"
        Image.new("RGB", (width, 20)).save(images_dir / f"{image_id}.jpg")
        images.append({"id": image_id, "height": 20, "width": width})
        regions = []
        for k, label in enumerate(["a red car", "the tall tree"]):
            mask = np.zeros((20, width), bool)
            mask[2 + 8 * k : 8 + 8 * k, 3 : 10 + index * 5] = True
            regions.append({"segmentation": rle_encode(mask), "label": label})
            bbox = [3, 2 + 8 * k, 7 + index * 5, 6]
            masks.append(
                {"id": 10 * index + k, "image_id": image_id, "category_id": 1, "iscrowd": 0, "area": int(mask.sum())}
            )
            masks[-1].update(segmentation=regions[-1]["segmentation"], bbox=bbox)
        labels = [r["label"] for r in regions]
        captions.append(
            {"id": index, "image_id": image_id, "caption": "a red car and the tall tree.", "labels": labels}
        )
        truth[f"{width}x20"] = regions
    categories = [{"id": 1, "name": "object"}]
    (ann_dir / "val_gcg_coco_mask_gt.json").write_text(
        json.dumps({"images": images, "annotations": masks, "categories": categories})
    )
    (ann_dir / "val_gcg_coco_caption_gt.json").write_text(json.dumps({"images": images, "annotations": captions}))
    save_truth(truth)
    return ann_dir, images_dir


def gcg_argv(ann_dir: Path, images_dir: Path, predictor: str) -> list[str]:
    return ["--ann", str(ann_dir), "--images", str(images_dir), "--split", "val", "--predictor", predictor]


def test_gcg_perfect_and_empty(tmp_path, oracle):
    truth, _ = oracle
    ann_dir, images_dir = write_grandf(tmp_path, truth)
    argv = gcg_argv(ann_dir, images_dir, "sa2va_test_oracle:gcg_perfect")
    assert gcg.main([*argv, "--output", str(tmp_path / "perfect")]) == 0
    perfect = json.loads((tmp_path / "perfect" / "results.json").read_text())
    summary = perfect["summary"]
    assert summary["AP"] == pytest.approx(100) and summary["AP50"] == pytest.approx(100)
    assert summary["mIoU"] == pytest.approx(100) and summary["recall"] == pytest.approx(100)
    assert summary["recall_similarity"] == "bag_of_words_similarity" and summary["num_images"] == 2
    assert "not_computed" in summary["captioning"] or "CIDEr" in summary["captioning"]
    assert perfect["items"][0]["caption"] == "a red car and the tall tree ."  # official: "[SEG]." -> " ."
    argv = gcg_argv(ann_dir, images_dir, "sa2va_test_oracle:gcg_empty")
    assert gcg.main([*argv, "--output", str(tmp_path / "empty")]) == 0
    empty = json.loads((tmp_path / "empty" / "results.json").read_text())["summary"]
    assert (empty["AP"], empty["AP50"], empty["mIoU"], empty["recall"]) == (0.0, 0.0, 0.0, 0.0)


def test_gcg_two_processes_match_one(tmp_path, oracle):
    truth, env = oracle
    ann_dir, images_dir = write_grandf(tmp_path, truth)
    argv = gcg_argv(ann_dir, images_dir, "sa2va_test_oracle:gcg_shifted")
    assert gcg.main([*argv, "--output", str(tmp_path / "one")]) == 0
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = launch_two(env, "sa2va_hf.evaluation.gcg", argv, tmp_path / "two")
    assert 0 < one["summary"]["mIoU"] < 100 and 0 < one["summary"]["AP"] < 100
    assert two["summary"] == one["summary"] and two["items"] == one["items"]


def test_gcg_errors_name_file_and_field(tmp_path, oracle):
    truth, _ = oracle
    ann_dir, images_dir = write_grandf(tmp_path, truth)
    caption_path = ann_dir / "val_gcg_coco_caption_gt.json"
    data = json.loads(caption_path.read_text())
    data["annotations"][1]["labels"].pop()
    caption_path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"caption_gt\.json: annotations\[1\] field 'labels' has 1 phrases, but "):
        gcg.GCGEvaluator(ann_dir, images_dir, "val", gcg.bag_of_words_similarity)
    del data["annotations"][0]["labels"]
    caption_path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"val_gcg_coco_caption_gt\.json: annotations\[0\] has no field 'labels'"):
        gcg.GCGEvaluator(ann_dir, images_dir, "val", gcg.bag_of_words_similarity)
    mask_path = ann_dir / "val_gcg_coco_mask_gt.json"
    mask_path.unlink()
    with pytest.raises(FileNotFoundError, match=r"val_gcg_coco_mask_gt\.json: GCG mask ground truth not found"):
        gcg.GCGEvaluator(ann_dir, images_dir, "val", gcg.bag_of_words_similarity)


# ---------------------------------------------------------------- the tiny real model


def test_tiny_model_smoke(tmp_path, oracle):
    truth, _ = oracle
    ann_dir = write_refer(tmp_path / "refer", "refcoco", truth)
    refs_path = ann_dir / "refs(unc).p"
    first = pickle.loads(refs_path.read_bytes())[0]
    refs_path.write_bytes(pickle.dumps([{**first, "sentences": first["sentences"][:1]}]))  # one query
    argv = ["--dataset", "refcoco", "--ann", str(ann_dir), "--images", str(ann_dir.parent / "train2014")]
    argv += ["--predictor", "sa2va_test_oracle:tiny", "--output", str(tmp_path / "image"), "--limit", "1"]
    assert refcoco.main(argv) == 0
    summary = json.loads((tmp_path / "image" / "results.json").read_text())["summary"]
    assert summary["num_queries"] == 1 and 0 <= summary["cIoU"] <= 100
    root = write_vos(tmp_path / "mevis", "mevis", truth)
    video = run_vos(root, "mevis", "sa2va_test_oracle:tiny", tmp_path / "video", "--limit", "1")["summary"]
    assert video["num_expressions"] == 1 and 0 <= video["J&F"] <= 100
