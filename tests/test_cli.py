"""The `sa2va-hf` command: the main job on the embedded default, and one-line errors with exit code 2."""

import json

import numpy as np
import pytest
from PIL import Image

from sa2va_hf.cli import main
from sa2va_hf.synthetic import random_clip, random_scene


def test_predict_on_the_bundled_image_and_clip_writes_answers_and_overlays(tmp_path, capsys):
    assert main(["predict", "--out", str(tmp_path), "--max-new-tokens", "4"]) == 0
    image = json.loads((tmp_path / "image.json").read_text())
    video = json.loads((tmp_path / "video.json").read_text())
    assert isinstance(image["prediction"], str) and isinstance(video["prediction"], str)
    assert Image.open(tmp_path / "image.png").size == (320, 240)
    overlays = sorted(tmp_path.glob("video_*.png"))
    assert len(overlays) == 8 and all(Image.open(p).size == (256, 192) for p in overlays)
    assert "Results are in" in capsys.readouterr().out


def test_predict_writes_one_overlay_per_frame_with_the_masks(tmp_path):
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    for index, scene in enumerate(random_clip(seed=2, size=(48, 40), num_frames=6)):
        scene.image.save(frames_dir / f"{index:02d}.png")
    out = tmp_path / "out"
    assert main(["predict", "--video", str(frames_dir), "--text", "<image>Segment it.", "--out", str(out)]) == 0
    summary = json.loads((out / "video.json").read_text())
    assert len(list(out.glob("video_*.png"))) == 6
    for entry in summary["masks"]:
        assert entry["shape"] == [6, 40, 48]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "--image", "missing.png"], "--image 'missing.png': no such file"),
        (["predict", "--video", "missing_dir"], "--video: video source 'missing_dir' does not exist"),
        (["predict", "--model", "no-such-model", "--image", "{image}"], "--model 'no-such-model'"),
        (["predict", "--image", "{image}", "--text", "<image>   "], "holds no question"),
        (["predict", "--image", "{text_file}"], "is not a readable image"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, argv, message):
    random_scene(seed=1, size=(32, 24)).image.save(tmp_path / "image.png")
    (tmp_path / "notes.png").write_text("not an image")
    argv = [a.format(image=tmp_path / "image.png", text_file=tmp_path / "notes.png") for a in argv]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and message in error and "Traceback" not in error


def test_overlay_colours_each_mask():
    from sa2va_hf.visualize import PALETTE, overlay_masks, seg_phrases

    image = Image.new("RGB", (8, 4), (0, 0, 0))
    masks = [np.zeros((4, 8), bool), np.zeros((4, 8), bool)]
    masks[0][:, :2], masks[1][:, 6:] = True, True
    result = np.asarray(overlay_masks(image, masks, alpha=1.0))
    assert tuple(result[0, 0]) == PALETTE[0] and tuple(result[0, 7]) == PALETTE[1] and tuple(result[0, 4]) == (0, 0, 0)
    assert seg_phrases("<p> a dog </p> [SEG] and <p> a cat </p> [SEG].", 2) == ["a dog", "a cat"]


def test_delegated_commands_reach_their_modules(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "refvos", "--help"])
    assert exit_info.value.code == 0 and "sa2va-hf eval refvos" in capsys.readouterr().out
    assert main(["eval", "nonsense"]) == 2
    assert "eval refcoco | eval refvos | eval gcg" in capsys.readouterr().err
