"""The sim2real lab: the paper's Table 1 rows on the built-in simulator, several seeds each, scored on an in-domain
and a shifted-domain test set, with σ and only the claims the numbers resolve (mhr_tf/experiments/lab.py).

    python scripts/sim2real_lab.py                      # the `lab` size: ~2 hours on 2 cores, resumable
    python scripts/sim2real_lab.py --publish benchmarks/lab
    python scripts/sim2real_lab.py --size tiny --out /tmp/lab_tiny   # the machinery in minutes

Rerunning the same command resumes: finished rows x seeds are kept, an interrupted one resumes from its checkpoint.
Writes lab.md, lab.json, lab.png and lab_curve.png into --out (default $MHR_TF_HOME/lab/<size>).
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="lab", choices=("lab", "tiny"), help="the lab's scale (default lab)")
    parser.add_argument("--out", default=None, help="where the data, runs and report go")
    parser.add_argument("--workers", type=int, default=2, help="row x seed jobs in parallel, one core each")
    parser.add_argument("--runs", default=None, help="only these rows, comma-separated gin names (e.g. rgb,full)")
    parser.add_argument("--prepare_only", action="store_true", help="simulate and cache, then stop")
    parser.add_argument("--dann_sweep", action="store_true",
                        help="instead: the paper's DANN protocol (RGB + DANN, weights 0.2-5 x 5 seeds)")
    parser.add_argument("--publish", default=None, help="also write the report here (e.g. benchmarks/lab)")
    from mhr_tf import cli
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)

    def run():
        from mhr_tf.experiments import lab
        if args.dann_sweep:
            sweep = lab.dann_sweep(args.size, args.out, args.workers, publish=args.publish)
            print(f"DANN sweep: best {sweep['best']}, mean over all runs {sweep['all']['mean']:.1f} mm")
            return
        summary = lab.run_lab(args.size, args.out, args.workers, args.publish,
                              tuple(args.runs.split(",")) if args.runs else None, args.prepare_only)
        print(f"done in {summary['seconds']}; report in {summary['out']}")
    return cli.run(run, args.debug)


if __name__ == "__main__":
    sys.exit(main())
