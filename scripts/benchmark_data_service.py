"""Throughput of the TF-only training graph (make_dataset with the TFDS source and TF TV-L1 flow, computed in the
pipeline or in the model) in this process and on a local tf.data service: a dispatcher and 1, then 2, workers, on
127.0.0.1.

    python scripts/benchmark_data_service.py [--data TFDS_DIR] [--num_frames 8] [--crop 64] [--batches 30]
                                             [--workers 1,2] [--placements pipeline,model] [--compression AUTO]
                                             [--out benchmarks/data_service.json]
    python scripts/benchmark_data_service.py --full    # paper size: 31 frames, 224-px crops, batch 1, 12 batches

Without --data, tiny simulator data is written and built with the TFDS builders into a temporary folder. Wall
clips/s and the CPU seconds per clip of the processes running the graph are both recorded.
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help="TFDS data_dir with surreal_clips and background_clips built for --num_frames")
    parser.add_argument("--num_frames", type=int, default=8, help="frames per clip")
    parser.add_argument("--crop", type=int, default=64, help="crop size in pixels")
    parser.add_argument("--batch", type=int, default=2, help="clips per batch")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches first (tracing, XLA)")
    parser.add_argument("--batches", type=int, default=30, help="timed batches per run")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--placements", default="pipeline,model", help="flow placements, comma-separated")
    parser.add_argument("--compression", default="AUTO", choices=("AUTO", "SNAPPY", "none"),
                        help="how the workers compress what they send (none: not at all)")
    parser.add_argument("--full", action="store_true",
                        help="paper size: --num_frames 31 --crop 224 --batch 1 --warmup 2 --batches 12")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "data_service.json", help="JSON report")
    from mhr_tf import cli
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)

    if args.full:
        args.num_frames, args.crop, args.batch, args.warmup, args.batches = 31, 224, 1, 2, 12

    def run():
        from mhr_tf.bench import data_service
        data_service.run(args.out, data=args.data, num_frames=args.num_frames, crop=args.crop, batch=args.batch,
                         warmup=args.warmup, batches=args.batches,
                         workers=tuple(int(n) for n in args.workers.split(",")),
                         placements=tuple(args.placements.split(",")),
                         compression=None if args.compression == "none" else args.compression)
    return cli.run(run, args.debug)


if __name__ == "__main__":
    sys.exit(main())
