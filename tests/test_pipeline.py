"""`pipeline(model=folder, trust_remote_code=True)`: shipped with every saved checkpoint, same results as the model
API, batches, videos; and the model card metadata the Hub reads."""

import json
import os
import subprocess
import sys

from sa2va_hf.synthetic import random_clip, random_scene


PIPELINE_SCRIPT = r"""
import json, sys
import numpy as np
from PIL import Image
from transformers import pipeline

folder, image_path, frames_dir = sys.argv[1:4]
sa2va = pipeline(model=folder, trust_remote_code=True)
seg = sa2va.processor.seg_token_id
kwargs = {"max_new_tokens": 3, "sequence_bias": {(seg,): 100.0}}
text = "<image>Please segment the shapes."
single = sa2va(image_path, text=text, **kwargs)
direct = sa2va.model.predict_forward(image=Image.open(image_path), text=text, processor=sa2va.processor, **kwargs)
batch = sa2va([image_path, {"image": image_path, "text": text}], text=text, **kwargs)
video = sa2va({"video": frames_dir}, text=text, **kwargs)
same = lambda a, b: a["text"] == b["text"] and len(a["masks"]) == len(b["masks"]) and all(
    np.array_equal(x, y) for x, y in zip(a["masks"], b["masks"]))
print(json.dumps({
    "class": type(sa2va).__name__,
    "num_masks": len(single["masks"]),
    "matches_model": single["text"] == direct["prediction"] and all(
        np.array_equal(x, y) for x, y in zip(single["masks"], direct["prediction_masks"])),
    "batch_matches_single": len(batch) == 2 and all(same(item, single) for item in batch),
    "video_mask_shape": list(video["masks"][0].shape) if video["masks"] else None,
}))
"""


def test_pipeline_ships_with_the_checkpoint_and_matches_the_model(tiny_models, tmp_path):
    model, processor = tiny_models("internvl")
    folder = tmp_path / "checkpoint"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"]["sa2va"]["impl"] == "pipeline_sa2va.Sa2VAPipeline"
    assert (folder / "pipeline_sa2va.py").is_file()
    random_scene(seed=3, size=(40, 30)).image.save(tmp_path / "image.png")
    frames = tmp_path / "frames"
    frames.mkdir()
    for index, scene in enumerate(random_clip(seed=2, size=(32, 24), num_frames=3)):
        scene.image.save(frames / f"{index:02d}.png")

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    args = [str(folder), str(tmp_path / "image.png"), str(frames)]
    run = subprocess.run([sys.executable, "-c", PIPELINE_SCRIPT, *args], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    reported = json.loads(run.stdout.strip().splitlines()[-1])
    assert reported == {
        "class": "Sa2VAPipeline",
        "num_masks": 2,
        "matches_model": True,
        "batch_matches_single": True,
        "video_mask_shape": [3, 24, 32],
    }


def test_converted_checkpoints_carry_the_pipeline(tmp_path):
    from sa2va_hf.conversion.official_processor import save_config_and_code
    from sa2va_hf.tiny import build_tiny_model

    config = build_tiny_model("qwen2_5_vl")[0].config
    copied = {path.name for path in save_config_and_code(config, tmp_path)}
    assert "pipeline_sa2va.py" in copied
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["custom_pipelines"] == {
        "sa2va": {"impl": "pipeline_sa2va.Sa2VAPipeline", "pt": ["AutoModel"], "type": "multimodal"}
    }
