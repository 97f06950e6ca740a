"""End-to-end video time against its floor: one VLM pass plus one SAM-2 image-encoder pass per frame.

Runs `predict_video_stream` of a tiny Sa2VA (1024² SAM-2, `--sam`) on a synthetic clip with `--objects` [SEG]s,
and in the same run measures the floor: the time of the VLM pass (the eager part of the call: key-frame views and
generation) plus N times the mean time of one SAM-2 encoder pass. Goal: end-to-end / floor <= 1.15. The official
algorithm (every SAM view resident, one SAM-2 run per object) is timed on the same clip after the same VLM pass.

    python benchmarks/bench_floor.py --frames 16 --objects 2
"""

import argparse
import platform
import time

import torch
from baseline import SAM2_CHOICES, build_sam2, run_official, table, timed

from sa2va_hf.synthetic import random_clip
from sa2va_hf.tiny import build_tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--sam", choices=SAM2_CHOICES, default="tiny")
    parser.add_argument("--size", type=int, nargs=2, default=[320, 240], metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, processor = build_tiny_model("internvl")
    model.sam2 = build_sam2(args.sam)
    frames = [scene.image for scene in random_clip(seed=0, size=tuple(args.size), num_frames=args.frames)]
    # one [SEG] per object: a strong bias, and as many new tokens as objects + the closing token
    generate_kwargs = {"sequence_bias": {(processor.seg_token_id,): 50.0}, "max_new_tokens": args.objects + 1}
    text = "<image>Please segment every shape."

    def stream():
        return model.predict_video_stream(frames, text, processor=processor, show_progress=False, **generate_kwargs)

    stream()  # warm-up
    start = time.perf_counter()
    video_stream = stream()
    vlm_seconds = time.perf_counter() - start
    num_masks = sum(1 for _ in video_stream)
    end_to_end = time.perf_counter() - start
    assert num_masks == args.frames and video_stream.num_objects == args.objects, video_stream.prediction

    views = processor.image_processor.sam_view(frames[:3])
    encoder_seconds = min(timed(model.sam2.get_image_features, views[i : i + 1]) for i in range(3))
    floor = vlm_seconds + args.frames * encoder_seconds

    embeddings = torch.randn(args.objects, model.config.seg_hidden_size)
    official_sam = timed(run_official, model.sam2, embeddings, args.frames, model.config.num_key_frames)
    official = vlm_seconds + official_sam
    print(f"{args.frames} frames {args.size[0]}x{args.size[1]}, {args.objects} objects, tiny VLM, SAM-2 {args.sam} "
          f"at 1024², {args.threads} thread(s), {platform.processor() or platform.machine()}")  # fmt: skip
    rows = [
        ["VLM pass (key frames + generation)", f"{vlm_seconds:.2f}", ""],
        ["SAM-2 encoder, one frame", f"{encoder_seconds:.2f}", ""],
        ["floor = VLM + N x encoder", f"{floor:.2f}", "1.00"],
        ["ours end to end (predict_video_stream, collected)", f"{end_to_end:.2f}", f"{end_to_end / floor:.2f}"],
        ["official algorithm (VLM + per-object SAM-2 runs)", f"{official:.2f}", f"{official / floor:.2f}"],
    ]
    print("\n".join(table(["", "seconds", "/ floor"], rows)))
    print(
        f"goal: ours / floor <= 1.15: {end_to_end / floor:.2f} -> {'met' if end_to_end / floor <= 1.15 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
