"""Peak memory against video length: our streaming engine vs the official algorithm (all frames resident).

Each (engine, length) runs in its own subprocess so its peak RSS is measured alone. Goal: our peak at the longest
length within 1.2x of our peak at the shortest; the baseline grows linearly with the frames.

    python benchmarks/bench_memory.py --frames 16 64 256 --objects 2
"""

import argparse
import json
import platform
import subprocess
import sys

import torch
from baseline import SAM2_CHOICES, build_sam2, peak_rss_mib, random_embeddings, run_official, run_ours, table


def child(engine: str, num_frames: int, args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    sam2 = build_sam2(args.sam)
    embeddings = random_embeddings(sam2, args.objects)
    before = peak_rss_mib()
    with torch.inference_mode():
        (run_ours if engine == "ours" else run_official)(sam2, embeddings, num_frames, args.key_frames)
    print(json.dumps({"peak_mib": peak_rss_mib(), "model_mib": before}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--key-frames", type=int, default=5)
    parser.add_argument("--sam", choices=SAM2_CHOICES, default="tiny")
    parser.add_argument("--engines", nargs="+", choices=("ours", "official"), default=["ours", "official"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "FRAMES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args)
        return
    peaks = {}
    for engine in args.engines:
        for num_frames in args.frames:
            command = [sys.executable, __file__, "--child", engine, str(num_frames), "--objects", str(args.objects),
                       "--key-frames", str(args.key_frames), "--sam", args.sam, "--threads", str(args.threads)]  # fmt: skip
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            peaks[engine, num_frames] = json.loads(output.splitlines()[-1])
            print(f"{engine} {num_frames} frames: {peaks[engine, num_frames]}", file=sys.stderr, flush=True)
    shortest = min(args.frames)
    rows = []
    for engine in args.engines:
        for num_frames in args.frames:
            peak = peaks[engine, num_frames]["peak_mib"]
            ratio = peak / peaks[engine, shortest]["peak_mib"]
            rows.append([engine, num_frames, f"{peak:.0f}", f"{ratio:.2f}"])
    print(f"SAM-2 {args.sam} at 1024², {args.objects} objects, {args.key_frames} key frames, "
          f"{args.threads} thread(s), {platform.processor() or platform.machine()}")  # fmt: skip
    print("\n".join(table(["engine", "frames", "peak RSS (MiB)", f"peak / peak at {shortest} frames"], rows)))
    longest = max(args.frames)
    if "ours" in args.engines:
        ratio = peaks["ours", longest]["peak_mib"] / peaks["ours", shortest]["peak_mib"]
        print(f"goal: ours at {longest} frames <= 1.2x ours at {shortest}: {ratio:.2f} -> "
              f"{'met' if ratio <= 1.2 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
