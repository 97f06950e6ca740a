"""Cost of more objects: time(K objects) / time(1 object), our engine vs the official algorithm.

Our engine encodes each frame once and runs all objects as one batch; the official algorithm runs each object
on its own. Goal: ours <= 1 + 0.15 * (K - 1); the baseline is about K.

    python benchmarks/bench_objects.py --sam hiera-large --frames 2 --objects 1 2 4 8
"""

import argparse
import platform

import torch
from baseline import SAM2_CHOICES, build_sam2, random_embeddings, run_official, run_ours, table, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--key-frames", type=int, default=2)
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--sam", choices=SAM2_CHOICES, default="tiny")
    parser.add_argument("--engines", nargs="+", choices=("ours", "official"), default=["ours", "official"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sam2 = build_sam2(args.sam)
    timed(run_ours, sam2, random_embeddings(sam2, 1), 1, 1)  # warm-up
    times = {}
    for num_objects in args.objects:
        embeddings = random_embeddings(sam2, num_objects)
        for engine, run in (("ours", run_ours), ("official", run_official)):
            if engine in args.engines:
                times[engine, num_objects] = timed(run, sam2, embeddings, args.frames, args.key_frames)
    one = min(args.objects)
    rows = []
    for k in args.objects:
        row = [k]
        if "ours" in args.engines:
            ours, goal = times["ours", k] / times["ours", one], 1 + 0.15 * (k - one)
            row += [f"{times['ours', k]:.1f}", f"{ours:.2f}", f"{goal:.2f}", "yes" if ours <= goal else "NO"]
        else:
            row += ["-"] * 4
        if "official" in args.engines:
            row += [f"{times['official', k]:.1f}", f"{times['official', k] / times['official', one]:.2f}"]
        else:
            row += ["-"] * 2
        rows.append(row)
    print(f"SAM-2 {args.sam} at 1024², {args.frames} frames ({args.key_frames} key frames), {args.threads} thread(s), "
          f"{platform.processor() or platform.machine()}")  # fmt: skip
    header = ["K", "ours (s)", f"ours / ours K={one}", "goal", "met", "official (s)", f"official / official K={one}"]
    print("\n".join(table(header, rows)))


if __name__ == "__main__":
    main()
