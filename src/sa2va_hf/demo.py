"""A Gradio demo: upload an image or a video, chat about it, see each `[SEG]` mask in its own colour.

    sa2va-hf demo --model path/or/org/Sa2VA-InternVL3-2B      # or: python app.py (a Hugging Face Space)

Draw on the image (InternVL-family checkpoints) to ask about a region: every stroke layer becomes a visual prompt
(`region1`, `region2`, ... in the question). The answer streams as it is generated; grounded-caption phrases are
coloured like their masks.
"""

import argparse
import html
import tempfile
from pathlib import Path
from threading import Thread

import numpy as np

from .visualize import PALETTE, overlay_masks, seg_phrases


def answer_html(prediction: str, num_masks: int) -> str:
    """The answer as HTML, each mask's phrase (or its `[SEG]`) in that mask's colour."""
    labels = seg_phrases(prediction, num_masks)
    pieces = prediction.split("[SEG]")
    out = []
    for index, piece in enumerate(pieces):
        out.append(html.escape(piece))
        if index < len(pieces) - 1:
            colour = PALETTE[index % len(PALETTE)] if index < num_masks else (128, 128, 128)
            label = html.escape(labels[index]) if index < num_masks else "[SEG]"
            out.append(f'<b style="color: rgb{colour}">[{label}]</b>')
    return f'<div id="sa2va-answer">{"".join(out)}</div>'


def region_masks(editor_value) -> np.ndarray | None:
    """Visual prompts from an image-editor value: one bool `(H, W)` mask per non-empty drawn layer."""
    layers = [np.asarray(layer)[..., 3] > 0 for layer in (editor_value or {}).get("layers") or []]
    layers = [layer for layer in layers if layer.any()]
    return np.stack(layers) if layers else None


def build_demo(model, processor, max_new_tokens: int = 256):
    """The Gradio `Blocks` app for `model` and `processor`, answers up to `max_new_tokens` long."""
    import gradio as gr
    from transformers import TextIteratorStreamer

    from .models.sa2va.video_io_sa2va import load_frames
    from .outputs import write_prediction

    def respond(editor_value, video_path, question, history, past_text):
        if not question or not question.strip():
            raise gr.Error("Type a question first.")
        image = (editor_value or {}).get("background")
        media = (
            {"video": load_frames(video_path)} if video_path else ({"image": image.convert("RGB")} if image else {})
        )
        regions = region_masks(editor_value) if "image" in media else None
        if regions is not None:
            media["mask_prompts"] = regions
        text = question if past_text or not media or "<image>" in question else f"<image>{question}"
        history = [*history, {"role": "user", "content": question}, {"role": "assistant", "content": ""}]
        streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        results = []
        kwargs = {**media, "text": text, "past_text": past_text, "processor": processor, "streamer": streamer}
        worker = Thread(target=lambda: results.append(model.predict_forward(**kwargs, max_new_tokens=max_new_tokens)))
        worker.start()
        for piece in streamer:
            history[-1]["content"] += piece
            yield history, None, None, "", past_text
        worker.join()
        if not results:
            raise gr.Error("The model failed on this input; see the server log.")
        result = results[0]
        masks = result["prediction_masks"]
        history[-1]["content"] = result["prediction"]
        frames = media.get("video") or ([media["image"]] if "image" in media else [])
        overlay, video_out = None, None
        if frames:
            labels = seg_phrases(result["prediction"], len(masks))
            overlay = overlay_masks(frames[0], [mask[0] for mask in masks], labels)
        if "video" in media and masks:
            out_dir = Path(tempfile.mkdtemp(prefix="sa2va_demo_"))
            written = write_prediction(out_dir, "video", result["prediction"], frames, masks, is_video=True)
            video_out = str(written["mp4"][0]) if written["mp4"] else None
        yield history, overlay, video_out, answer_html(result["prediction"], len(masks)), result["past_text"]

    with gr.Blocks(title="Sa2VA") as demo:
        gr.Markdown("# Sa2VA\nUpload an image (draw on it to point at regions) or a video, then ask.")
        with gr.Row():
            with gr.Column():
                image = gr.ImageEditor(type="pil", label="Image", elem_id="sa2va-image")
                video = gr.Video(label="Video", elem_id="sa2va-video")
            with gr.Column():
                chatbot = gr.Chatbot(label="Chat", elem_id="sa2va-chat")
                question = gr.Textbox(label="Question", placeholder="Please segment the ...", elem_id="sa2va-question")
                with gr.Row():
                    ask = gr.Button("Ask", variant="primary", elem_id="sa2va-ask")
                    clear = gr.Button("New conversation")
                answer = gr.HTML(elem_id="sa2va-answer-box")
                overlay = gr.Image(label="Masks", type="pil", elem_id="sa2va-overlay")
                overlay_video = gr.Video(label="Masks (video)")
        past_text = gr.State("")
        outputs = [chatbot, overlay, overlay_video, answer, past_text]
        ask.click(respond, [image, video, question, chatbot, past_text], outputs)
        question.submit(respond, [image, video, question, chatbot, past_text], outputs)
        clear.click(lambda: ([], None, None, "", ""), None, outputs)
    return demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sa2va-hf demo", description=__doc__)
    parser.add_argument("--model", default=None, help="folder, Hub id or preset (default: the embedded default)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args(argv)
    try:
        import gradio  # noqa: F401
    except ImportError:
        parser.error('the demo needs Gradio: pip install "sa2va-hf[demo]"')
    from .cli import DEFAULT_MODEL, load_model

    model, processor = load_model(args.model or DEFAULT_MODEL, args.device, args.dtype)
    build_demo(model, processor, args.max_new_tokens).queue().launch(server_name=args.host, server_port=args.port)
    return 0


__all__ = ["answer_html", "build_demo", "main", "region_masks"]
