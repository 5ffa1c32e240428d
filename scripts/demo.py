"""`make demo`: the main job end to end on the built-in simulator's data, into one run folder whose path it prints.

    python scripts/demo.py [--out DIR] [--gin_param 'train.num_steps = 600'] [--workers 2] [--flow_method dis]

Stages: the open body model and its picture; simulated SURREAL-format clips, background videos and a shifted-domain
evaluation set in 3DPW's layout (under $MHR_TF_HOME/sim/<kind>, with previews); the backgrounds' camera motion and
window caches for the demo's clip length; training gin/demo.gin; evaluation of the model and the mean-pose baseline
on the shifted-domain test split; export as a SavedModel and the same evaluation through it; prediction on one test
video; a picture of one training example; <run>/summary.md with the tables, the preprocessing contract the model was
trained with, the pictures and each stage's time. A rerun reuses every finished stage.

Exit status: 0 when the trained model beats the mean-pose baseline (PA-MPJPE, paper protocol) and the SavedModel
gives the checkpoint's numbers; 1 when either fails; 2 on a user error (one line; --debug for the traceback).
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="run folder (default: $MHR_TF_HOME/demo/run)")
    parser.add_argument("--gin_param", action="append", default=[],
                        help="extra gin binding over gin/demo.gin, e.g. 'train.num_steps = 600' (repeatable)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes for the simulator and the background windows (default: all cores)")
    parser.add_argument("--flow_method", choices=("dis", "tvl1"), default="dis",
                        help="the backgrounds' camera motion (App. A uses tvl1; the demo uses dis for time)")
    from mhr_tf import cli
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    passed = []

    def run():
        from mhr_tf.experiments import demo
        passed.append(demo.run(args.out, args.gin_param, args.workers, args.flow_method))
    code = cli.run(run, args.debug)
    return code or (0 if passed and passed[0] else 1)


if __name__ == "__main__":
    sys.exit(main())
