"""The `sa2va-hf` command: `predict` (answer + masks + overlays), `convert`, `build`, `push` and `eval`."""

import argparse
import itertools
import sys
from importlib import resources
from pathlib import Path

from PIL import Image


DEFAULT_MODEL = "tiny-shapes"
DEFAULT_IMAGE_TEXT = "<image>Please segment the yellow square."
DEFAULT_VIDEO_TEXT = "<image>Please segment the red square."


class CLIError(Exception):
    """A user error: printed on one line, exit code 2, no traceback."""


def _assets() -> Path:
    return Path(str(resources.files("sa2va_hf") / "assets"))


def load_model(name_or_path: str, device: str, dtype: str):
    import torch

    from .presets import PRESET_NAMES, load_preset

    if name_or_path in PRESET_NAMES:
        model, processor = load_preset(name_or_path)
    else:
        from transformers import AutoModel, AutoProcessor

        if not Path(name_or_path).exists() and name_or_path.count("/") != 1:
            raise CLIError(f"--model {name_or_path!r} is neither a folder, a Hub id (org/name) nor a preset.")
        model = AutoModel.from_pretrained(name_or_path, dtype=getattr(torch, dtype))
        processor = AutoProcessor.from_pretrained(name_or_path)
    return model.to(device=device, dtype=getattr(torch, dtype)).eval(), processor


def _key_frames(value: str | None) -> tuple[str | None, list[int] | None]:
    """`--key-frames`, checked before the model loads: `(strategy, None)` for 'first' / 'uniform' (set on the model's
    config), `(None, indices)` for comma-separated frame indices, `(None, None)` when not given."""
    if value is None or value in ("first", "uniform"):
        return value, None
    try:
        return None, [int(index) for index in value.split(",")]
    except ValueError:
        raise CLIError(f"--key-frames {value!r}: give 'first', 'uniform' or frame indices like 0,10,20.") from None


def predict(args: argparse.Namespace) -> int:
    from .models.sa2va.video_io_sa2va import load_frames
    from .outputs import PredictionWriter, write_prediction

    out_dir = Path(args.out)
    jobs = []
    if args.image is None and args.video is None:
        jobs.append(
            ("image", Image.open(_assets() / "sample_image.png").convert("RGB"), args.text or DEFAULT_IMAGE_TEXT)
        )
        jobs.append(("video", load_frames(_assets() / "sample_clip"), args.text or DEFAULT_VIDEO_TEXT))
    elif args.image is not None:
        jobs.append(("image", _open_image(args.image), args.text or DEFAULT_IMAGE_TEXT))
    else:
        jobs.append(("video", _check_video(args.video), args.text or DEFAULT_VIDEO_TEXT))

    key_frame_strategy, key_frame_indices = _key_frames(args.key_frames)
    model, processor = load_model(args.model, args.device, args.dtype)
    if key_frame_strategy is not None:
        model.config.key_frame_strategy = key_frame_strategy
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, media, text in jobs:
        try:
            if name == "image":
                result = model.predict_forward(
                    image=media, text=text, processor=processor, max_new_tokens=args.max_new_tokens
                )
                masks = result["prediction_masks"]
                prediction, num_masks = result["prediction"], len(masks)
                written = write_prediction(out_dir, name, prediction, [media], masks, is_video=False)
            else:
                stream = model.predict_video_stream(
                    media, text, processor=processor, key_frame_indices=key_frame_indices,
                    max_new_tokens=args.max_new_tokens,
                )  # fmt: skip
                writer = PredictionWriter(out_dir, name, stream.prediction, stream.num_objects, is_video=True)
                for frame_idx, frame, masks in stream:
                    writer.add(frame_idx, frame, masks)
                prediction, num_masks = stream.prediction, stream.num_objects
                written = writer.close()
        except (TypeError, ValueError, FileNotFoundError, ImportError) as error:
            raise CLIError(str(error).splitlines()[0]) from error
        print(f"{name}: {prediction!r} -> {num_masks} mask(s)")
        extra = f" and {written['mp4'][0].name}" if written["mp4"] else ""
        print(f"  wrote {written['json'][0]}, {len(written['overlays'])} overlay PNG(s){extra}")
    print(f"Results are in {out_dir.resolve()}")
    return 0


def chat(args: argparse.Namespace) -> int:
    """A multi-turn conversation in the terminal about one image or video (or none); each answer's masks are written
    to `--out` as `turn<N>.*`."""
    from .outputs import write_prediction

    media: dict = {}
    if args.image is not None:
        media = {"image": _open_image(args.image)}
    elif args.video is not None:
        from .models.sa2va.video_io_sa2va import load_frames

        media = {"video": load_frames(_check_video(args.video))}
    model, processor = load_model(args.model, args.device, args.dtype)
    out_dir = Path(args.out)
    past_text = ""
    print("Ask a question (an empty line or Ctrl-D ends the chat).")
    for turn in itertools.count():
        try:
            question = input("you> ").strip()
        except EOFError:
            break
        if not question:
            break
        text = question if turn or not media or "<image>" in question else f"<image>{question}"
        try:
            result = model.predict_forward(
                **media, text=text, past_text=past_text, processor=processor, max_new_tokens=args.max_new_tokens
            )
        except (TypeError, ValueError) as error:
            print(f"error: {str(error).splitlines()[0]}", file=sys.stderr)
            continue
        past_text = result["past_text"]
        print(f"sa2va> {result['prediction']}")
        masks = result["prediction_masks"]
        if masks:
            out_dir.mkdir(parents=True, exist_ok=True)
            frames = media.get("video") or [media["image"]]
            written = write_prediction(out_dir, f"turn{turn}", result["prediction"], frames, masks, "video" in media)
            print(f"  {len(masks)} mask(s) -> {written['json'][0]}")
    return 0


def _add_model_and_media_arguments(command: argparse.ArgumentParser, image_help: str, max_new_tokens: int) -> None:
    command.add_argument("--model", default=DEFAULT_MODEL, help=f"folder, Hub id or preset (default: {DEFAULT_MODEL})")
    source = command.add_mutually_exclusive_group()
    source.add_argument("--image", help=image_help)
    source.add_argument("--video", help="a video file or a folder of frames")
    command.add_argument("--device", default="cpu")
    command.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    command.add_argument("--max-new-tokens", type=int, default=max_new_tokens)


def _open_image(path: str) -> Image.Image:
    """`--image`, opened as RGB, or a one-line error naming it."""
    if not Path(path).is_file():
        raise CLIError(f"--image {path!r}: no such file.")
    try:
        return Image.open(path).convert("RGB")
    except OSError as error:
        raise CLIError(f"--image {path!r} is not a readable image: {error}") from error


def _check_video(path: str) -> str:
    """`--video`, or a one-line error when it does not exist."""
    if not Path(path).exists():
        raise CLIError(f"--video: video source {path!r} does not exist.")
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sa2va-hf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("predict", help="answer a question about an image or a video and segment it")
    _add_model_and_media_arguments(run, "an image file (default: the bundled sample image and clip)", 64)
    run.add_argument("--text", help="the question; put <image> where the image goes")
    run.add_argument("--out", default="sa2va_outputs", help="output folder (default: ./sa2va_outputs)")
    run.add_argument(
        "--key-frames",
        help="video key frames: 'first' (official), 'uniform', or indices like 0,10,20 (default: config)",
    )
    run.set_defaults(func=predict)

    talk = commands.add_parser("chat", help="a multi-turn conversation in the terminal about an image or a video")
    _add_model_and_media_arguments(talk, "an image file", 256)
    talk.add_argument("--out", default="sa2va_chat", help="where each answer's masks go (default: ./sa2va_chat)")
    talk.set_defaults(func=chat)

    # Commands whose arguments are parsed by their own module (listed here for `--help`; `main` hands them over).
    for command, help_text in COMMAND_HELP.items():
        commands.add_parser(command, help=help_text, add_help=False)
    return parser


# command words -> the module whose `main(argv)` parses the rest of the command line
DELEGATED_COMMANDS = {
    ("convert", "official"): "sa2va_hf.conversion.convert_official",
    ("build",): "sa2va_hf.conversion.build_from_components",
    ("push",): "sa2va_hf.conversion.push",
    ("eval", "refcoco"): "sa2va_hf.evaluation.refcoco",
    ("eval", "refvos"): "sa2va_hf.evaluation.refvos",
    ("eval", "gcg"): "sa2va_hf.evaluation.gcg",
    ("train",): "sa2va_hf.training.train",
    ("demo",): "sa2va_hf.demo",
}
COMMAND_HELP = {
    "convert": "convert an official ByteDance Sa2VA folder: `sa2va-hf convert official SRC DST`",
    "build": "assemble a fresh Sa2VA from a transformers VLM and SAM-2 weights",
    "push": "upload a converted or built folder to the Hub with a model card",
    "train": "fine-tune with transformers.Trainer (LoRA via peft): `sa2va-hf train --config train.yaml`",
    "demo": "a Gradio demo in the browser: `sa2va-hf demo --model M` (needs the demo extra)",
    "eval": "evaluate with the published protocols: `sa2va-hf eval refcoco|refvos|gcg ...`",
}


def _run_delegated(argv: list[str]) -> int | None:
    """Run a delegated command named by the first words of `argv`; `None` if `argv` names none."""
    from importlib import import_module

    for words, module in DELEGATED_COMMANDS.items():
        if tuple(argv[: len(words)]) == words:
            return import_module(module).main(argv[len(words) :])
    if argv and argv[0] in COMMAND_HELP:
        choices = " | ".join(" ".join(words) for words in DELEGATED_COMMANDS if words[0] == argv[0])
        print(f"sa2va-hf {argv[0]}: error: expected one of: {choices}", file=sys.stderr)
        return 2
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if (code := _run_delegated(argv)) is not None:
        return code
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CLIError as error:
        print(f"sa2va-hf {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
