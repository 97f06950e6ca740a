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
        assert entry["shape"] == [6, 40, 48] and len(entry["rle"]) == 6
    if (out / "video.mp4").exists():  # PyAV installed
        import av

        with av.open(str(out / "video.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) == 6


def test_rle_json_decodes_to_the_masks_of_predict_forward(tmp_path, tiny_models):
    from pycocotools import mask as mask_utils

    from sa2va_hf.outputs import PredictionWriter

    model, processor = tiny_models("internvl")
    image = random_scene(seed=4, size=(40, 30)).image
    # Force two [SEG] so there are masks to write, whatever the random tiny model would say.
    seg = processor.seg_token_id
    result = model.predict_forward(
        image=image, text="<image>Segment.", processor=processor, max_new_tokens=3,
        sequence_bias={(seg,): 100.0},
    )  # fmt: skip
    masks = result["prediction_masks"]
    assert len(masks) == 2
    writer = PredictionWriter(tmp_path, "image", result["prediction"], len(masks), is_video=False)
    writer.add(0, image, np.stack([m[0] for m in masks]))
    writer.close()
    summary = json.loads((tmp_path / "image.json").read_text())
    for entry, mask in zip(summary["masks"], masks):
        rle = {"size": entry["rle"][0]["size"], "counts": entry["rle"][0]["counts"].encode()}
        assert np.array_equal(mask_utils.decode(rle).astype(bool), mask[0])
    assert Image.open(tmp_path / "image.png").size == (40, 30)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "--image", "missing.png"], "--image 'missing.png': no such file"),
        (["predict", "--video", "missing_dir"], "--video: video source 'missing_dir' does not exist"),
        (["predict", "--model", "no-such-model", "--image", "{image}"], "--model 'no-such-model'"),
        (["predict", "--image", "{image}", "--text", "<image>   "], "holds no question"),
        (["predict", "--image", "{text_file}"], "is not a readable image"),
        (["predict", "--image", "{image}", "--key-frames", "a,b"], "--key-frames 'a,b'"),
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


@pytest.mark.parametrize("family", ["internvl", "qwen2_5_vl"])
def test_text_streams_through_predict_forward(tiny_models, family):
    from threading import Thread

    from transformers import TextIteratorStreamer

    model, processor = tiny_models(family)
    image = random_scene(seed=6, size=(40, 30)).image
    streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True)
    results = []
    kwargs = {"image": image, "text": "<image>Describe.", "processor": processor, "max_new_tokens": 6}
    thread = Thread(target=lambda: results.append(model.predict_forward(**kwargs, streamer=streamer)))
    thread.start()
    streamed = "".join(streamer)
    thread.join()
    expected = processor.tokenizer.decode(
        processor.tokenizer(results[0]["prediction"], add_special_tokens=False)["input_ids"], skip_special_tokens=True
    )
    assert streamed.strip() == expected.strip() and streamed.strip()


def test_chat_keeps_the_conversation_and_writes_masks(tmp_path, monkeypatch, capsys):
    random_scene(seed=8, size=(40, 30)).image.save(tmp_path / "image.png")
    questions = iter(["Please segment the shape.", "And now?", ""])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(questions))
    from sa2va_hf.models.sa2va.modeling_sa2va import Sa2VAForConditionalGeneration

    calls, original = [], Sa2VAForConditionalGeneration.predict_forward

    def spy(self, **kwargs):
        calls.append((kwargs, original(self, **kwargs)))
        return calls[-1][1]

    monkeypatch.setattr(Sa2VAForConditionalGeneration, "predict_forward", spy)
    argv = ["chat", "--image", str(tmp_path / "image.png"), "--out", str(tmp_path / "out"), "--max-new-tokens", "3"]
    assert main(argv) == 0
    answers = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sa2va> ")]
    assert len(answers) == 2 and len(calls) == 2
    assert calls[0][0]["text"] == "<image>Please segment the shape." and calls[1][0]["text"] == "And now?"
    assert calls[1][0]["past_text"] == calls[0][1]["past_text"] != ""
    for path in (tmp_path / "out").glob("turn*.json"):
        assert json.loads(path.read_text())["masks"][0]["shape"] == [1, 30, 40]
    assert main(["chat", "--image", str(tmp_path / "missing.png")]) == 2
