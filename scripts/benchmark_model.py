"""Time the training loop's step (mhr_tf.training.step.make_train_step) at the paper's size on this CPU, against the
machine's own float32 matmul rate, in several variants (bfloat16, fused BatchNorm, XLA for the trunk, threads,
oneDNN switches), each in its own process; the serving function's frames/s; the bf16 accuracy check.

    python scripts/benchmark_model.py [--variants baseline,bf16,...] [--repeats 3]   # -> benchmarks/model.json
    python scripts/benchmark_model.py --small      # tiny trunk, 64-px crops: a smoke run of seconds
    python scripts/benchmark_model.py --variants baseline,flow_in_model --merge   # the step with the flow layer

See mhr_tf/bench/model.py for what is measured and how.
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="tiny trunk and crops, baseline only: a smoke run")
    parser.add_argument("--variants", default=None,
                        help="comma-separated variant names (default: all; with --small: baseline); the list is in "
                             "mhr_tf/bench/model.py VARIANTS")
    parser.add_argument("--warmup", type=int, default=0, help="untimed steps after the first (tracing) one")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per variant (default 3; 2 small)")
    parser.add_argument("--no_inference", action="store_true", help="skip timing the serving function")
    parser.add_argument("--accuracy", choices=("auto", "yes", "no"), default="auto",
                        help="bf16 vs float32 accuracy check (auto: with a bf16 variant, not with --small)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other variants' rows of the JSON already at --out (e.g. --variants "
                             "baseline,flow_in_model --merge adds the flow layer's step beside the earlier variants)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON report (default benchmarks/model.json, benchmarks/model_small.json with --small)")
    from mhr_tf import cli
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    out = args.out or REPO / "benchmarks" / ("model_small.json" if args.small else "model.json")

    def run():
        from mhr_tf.bench import model
        model.run(out, small=args.small, variants=args.variants.split(",") if args.variants else None,
                  warmup=args.warmup, repeats=args.repeats, inference=not args.no_inference, accuracy=args.accuracy,
                  merge=args.merge)
    return cli.run(run, args.debug)


if __name__ == "__main__":
    sys.exit(main())
