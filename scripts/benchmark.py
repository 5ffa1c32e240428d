"""Run the benchmarks, each in its own process, and write benchmarks/results.json and benchmarks/README.md (the table
the README shows).

    python scripts/benchmark.py                  # quick: each benchmark's small/short settings (minutes)
    python scripts/benchmark.py --full           # the paper's sizes (hours on a CPU): benchmarks/<name>.json
    python scripts/benchmark.py --no_run         # only re-read the JSONs in benchmarks/ and rewrite the table
    python scripts/benchmark.py --only body,sim  # some of them

Quick mode writes benchmarks/<name>_small.json, full mode benchmarks/<name>.json; the benchmarks are body, sim,
pipeline, model, flow and data_service (mhr_tf/bench/; each also has its own script, scripts/benchmark_<name>.py).
Exit code 1 when a benchmark failed, 2 on a usage error.
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the full settings (default: the quick ones)")
    parser.add_argument("--only", default=None, help="comma-separated benchmark names (default: all)")
    parser.add_argument("--no_run", action="store_true", help="only read the existing JSONs and write the table")
    parser.add_argument("--out_dir", type=Path, default=REPO / "benchmarks", help="default: benchmarks/")
    from mhr_tf import cli
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    results = {}

    def run():
        from mhr_tf.bench import runner
        results.update(runner.run(args.out_dir, full=args.full, no_run=args.no_run,
                                  only=args.only.split(",") if args.only else None))
    code = cli.run(run, args.debug)
    return code or (1 if results.get("failed") else 0)


if __name__ == "__main__":
    sys.exit(main())
