"""Optical flow: end-point error and CPU seconds per pair of the pipeline's flow backends (compute_flow with "dis",
"tvl1", "tf_tvl1") and reference settings, on simulator-like 224-px frame pairs with known motion; one core.

    python scripts/benchmark_flow.py [--pairs 30] [--repeats 3] [--seed 0] [--sweep] [--no_graph]
                                     [--out benchmarks/flow.json]

See mhr_tf/bench/flow.py for the pairs and the rows.
"""
import argparse
import sys
from pathlib import Path

from mhr_tf import bench

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=30, help="frame pairs (a 31-frame clip has 30)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the pairs (best is reported)")
    parser.add_argument("--seed", type=int, default=0, help="of the pairs (the defaults were tuned on seeds 1-2)")
    parser.add_argument("--size", type=int, default=224, help="pair size in pixels (App. A: 224)")
    parser.add_argument("--sweep", action="store_true", help="also time TF TV-L1 at other settings (XLA)")
    parser.add_argument("--no_graph", action="store_true", help="skip the (slow) TF TV-L1 row without XLA")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "flow.json", help="JSON report")
    from mhr_tf import cli
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)

    def run():
        bench.pin_threads()  # before numpy and OpenCV load
        from mhr_tf.bench import flow
        flow.run(args.out, pairs=args.pairs, repeats=args.repeats, seed=args.seed, size=args.size,
                 sweep=args.sweep, graph=not args.no_graph)
    return cli.run(run, args.debug)


if __name__ == "__main__":
    sys.exit(main())
