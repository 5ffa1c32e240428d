"""Simulator benchmarks on one core: renderer frames/s (budget: 31 frames of a ~6k-vertex person at 320x240 in under
2 s), background videos per minute, simulator sequences per minute. Merged into benchmarks/sim.json.

    python scripts/benchmark_sim.py [--frames 31] [--repeats 3] [--out benchmarks/sim.json] [--png DIR]
"""
import argparse
import sys
from pathlib import Path

from mhr_tf import bench

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=31, help="frames per clip, video and sequence")
    parser.add_argument("--repeats", type=int, default=3, help="renderer passes (best is reported)")
    parser.add_argument("--videos", type=int, default=5, help="background videos written")
    parser.add_argument("--sequences", type=int, default=2, help="simulator sequences written per kind")
    parser.add_argument("--png", type=Path, default=None, help="write the last frame of each distance here")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "sim.json",
                        help="JSON report (merged: other keys of the file are kept)")
    from mhr_tf import cli
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)

    def run():
        bench.pin_threads()  # one core, as the renderer's budget states
        from mhr_tf.bench import sim
        sim.run(args.out, frames=args.frames, repeats=args.repeats, videos=args.videos, sequences=args.sequences,
                png=args.png)
    return cli.run(run, args.debug)


if __name__ == "__main__":
    sys.exit(main())
