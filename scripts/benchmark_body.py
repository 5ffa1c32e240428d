"""Time the SMPL-layout body layer, forward and forward+backward (tf.function, with and without XLA), at the
training batch: 93 bodies = 3 clips x 31 frames (paper §4.3), for the open body model and a random SMPL-sized one.

    python scripts/benchmark_body.py [--batch 93] [--repeats 20] [--out benchmarks/body.json]
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=93, help="bodies per call")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per mode")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "body.json", help="JSON report")
    from mhr_tf import cli
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)

    def run():
        from mhr_tf.bench import body
        body.run(args.out, batch=args.batch, repeats=args.repeats)
    return cli.run(run, args.debug)


if __name__ == "__main__":
    sys.exit(main())
