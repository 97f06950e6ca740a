"""Evaluation runners on small synthetic datasets written in the official layouts, with an oracle predictor."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sa2va_hf.evaluation import refcoco, refvos
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


# ---------------------------------------------------------------- referring VOS (MeViS / ReVOS layouts)


def write_vos(root: Path, dataset: str, truth: dict, with_masks: bool = True) -> Path:
    """Two videos of 3 frames (20x28); two expressions each (one a question), GT with empty frames."""
    layout = refvos.LAYOUTS[dataset]
    rng = np.random.default_rng(1)
    videos, mask_dict, foreground = {}, {}, {}
    anno_id = 0
    for v in range(2):
        video = f"vid{v}"
        frames = [f"{i:05d}" for i in range(3)]
        (root / "JPEGImages" / video).mkdir(parents=True)
        for frame in frames:
            Image.fromarray(rng.integers(0, 255, (20, 28, 3), dtype=np.uint8)).save(
                root / "JPEGImages" / video / f"{frame}.jpg"
            )
        expressions = {}
        video_fg = np.zeros((3, 20, 28), bool)
        for e, text in enumerate([f"the cat {v}", f"which thing moves in video {v}?"]):
            per_frame, masks = [], np.zeros((3, 20, 28), bool)
            for i in range(3):
                if (v + e + i) % 3 == 2:
                    per_frame.append(None)  # object absent from this frame
                else:
                    masks[i, 2 + i : 12 + e, 3 + 5 * e : 15 + v] = True
                    per_frame.append(rle_encode(masks[i]))
            mask_dict[str(anno_id)] = per_frame
            video_fg |= masks
            expressions[str(e)] = {"exp": text, "obj_id": [e], "anno_id": [anno_id], "type_id": e}
            truth[refvos.prompt_for(text)] = [rle_encode(m) for m in masks]
            anno_id += 1
        videos[video] = {"frames": frames, "expressions": expressions}
        foreground[video] = {"masks_rle": [rle_encode(m) for m in video_fg]}
    (root / layout.meta).write_text(json.dumps({"videos": videos}))
    if with_masks:
        (root / "mask_dict.json").write_text(json.dumps(mask_dict))
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


def test_mevis_perfect_and_empty(tmp_path, oracle):
    truth, _ = oracle
    root = write_vos(tmp_path / "mevis", "mevis", truth)
    perfect = run_vos(root, "mevis", "sa2va_test_oracle:perfect", tmp_path / "perfect")["summary"]
    assert perfect == {"J": 100.0, "F": 100.0, "J&F": 100.0, "num_expressions": 4}
    empty = run_vos(root, "mevis", "sa2va_test_oracle:empty", tmp_path / "empty")["summary"]
    expected = empty_prediction_scores(truth)
    assert 0 < expected < 100
    assert empty["J"] == pytest.approx(expected) and empty["F"] == pytest.approx(expected)


def test_revos_perfect_and_empty(tmp_path, oracle):
    truth, _ = oracle
    root = write_vos(tmp_path / "revos", "revos", truth)
    perfect = run_vos(root, "revos", "sa2va_test_oracle:perfect", tmp_path / "perfect")["summary"]
    for group in ("referring", "reason", "overall"):
        assert perfect[group] == {"J": 100.0, "F": 100.0, "A": 100.0, "R": 100.0, "J&F": 100.0}
    empty = run_vos(root, "revos", "sa2va_test_oracle:empty", tmp_path / "empty")["summary"]
    assert empty["overall"]["R"] == pytest.approx(100)  # no false positives
    assert empty["overall"]["J"] == pytest.approx(empty_prediction_scores(truth))
    gt_fraction = np.mean([np.mean([rle_decode(r).mean() if r else 0 for r in rles]) for rles in truth.values()])
    assert empty["overall"]["A"] == pytest.approx(100 * (1 - gt_fraction))


def test_server_split_writes_submission_pngs(tmp_path, oracle):
    truth, _ = oracle
    root = write_vos(tmp_path / "ytvos", "refytvos", truth, with_masks=False)
    result = run_vos(root, "refytvos", "sa2va_test_oracle:perfect", tmp_path / "sub")
    assert result["summary"] == {"num_expressions": 4, "submission": "Annotations/"}
    png = np.array(Image.open(tmp_path / "sub" / "Annotations" / "vid0" / "1" / "00001.png"))
    np.testing.assert_array_equal(png, rle_decode(truth[refvos.prompt_for("which thing moves in video 0?")][1]) * 255)


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


def test_two_processes_match_one(tmp_path, oracle):
    truth, env = oracle
    root = write_vos(tmp_path / "mevis", "mevis", truth)
    one = run_vos(root, "mevis", "sa2va_test_oracle:shifted", tmp_path / "one")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    command += ["--num_machines", "1"]
    command += ["--mixed_precision", "no", "--dynamo_backend", "no", "-m", "sa2va_hf.evaluation.refvos"]
    command += ["--dataset", "mevis", "--root", str(root), "--predictor", "sa2va_test_oracle:shifted"]
    command += ["--output", str(tmp_path / "two")]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["config"]["num_processes"] == 2
    assert sorted(p.name for p in (tmp_path / "two").glob("records.rank*.jsonl")) == [
        "records.rank0.jsonl",
        "records.rank1.jsonl",
    ]
    assert 0 < one["summary"]["J&F"] < 100
    assert two["summary"] == one["summary"] and two["items"] == one["items"]


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
