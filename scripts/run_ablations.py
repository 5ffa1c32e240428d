"""The paper's ablations as one command: train and evaluate every row of Tables 1-3 (one gin file per row).

    python scripts/run_ablations.py --preset demo                  # demo size, on the simulator data of `make demo`
    python scripts/run_ablations.py --preset paper --surreal_root SURREAL/cmu --background_root kinetics/
        --threedpw_root 3DPW/ --body_model SMPL/ [--rows rgb,flow,kp] [--out runs/ablations]   # one command

--preset demo   every row at demo size on the simulator's data: gin/demo.gin's bindings over the row's file, the
                row's clip length scaled so 31 frames become demo.gin's, --num_steps steps (default 150). Shows the
                machinery; a few minutes of training per row cannot rank the rows as the paper does.
--preset paper  every row's file as it is, on your SURREAL, background-video and 3DPW folders.

The rows, their published numbers and gin files come from mhr_tf/paper.py. Each run trains into <out>/<run>/ (after
caching the background windows for its clip length) and is evaluated on the test split (paper §4) into
<out>/<run>/result.json. Resumable row by row: a run whose result.json has the same settings is skipped; an
interrupted run resumes from its last checkpoint. Writes <out>/ablations.md, ablations.json and ablations.png.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("demo", "paper"), required=True, help="demo size or full size")
    parser.add_argument("--out", default=None, help="output folder (default: $MHR_TF_HOME/ablations/<preset>)")
    parser.add_argument("--rows", default=None, help="comma-separated gin file names, e.g. rgb,flow,kp (default all)")
    parser.add_argument("--num_steps", type=int, default=None,
                        help="training steps per row (demo default 150; paper default: the gin files')")
    parser.add_argument("--surreal_root", default=None, help="SURREAL-layout root (demo default: the simulator's)")
    parser.add_argument("--background_root", default=None, help="background videos (demo default: the simulator's)")
    parser.add_argument("--threedpw_root", default=None, help="3DPW-layout root (demo default: the simulator's)")
    parser.add_argument("--body_model", default=None,
                        help="SMPL files for the evaluation's ground truth (default: the open body model)")
    parser.add_argument("--gin_param", action="append", default=[], help="extra binding for every row (last)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes for the background windows (default: all cores)")
    parser.add_argument("--flow_method", choices=("dis", "tvl1"), default=None,
                        help="background camera motion where not cached (default: dis for demo, tvl1 for paper)")
    parser.add_argument("--slic_downsample", type=int, default=1,
                        help="SLIC of the background windows on every n-th pixel (1: the paper's settings)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    from mhr_tf import cli
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)

    def run():
        from mhr_tf.experiments import ablations
        ablations.run(args.preset, args.out, args.rows.split(",") if args.rows else None, args.num_steps,
                      args.surreal_root, args.background_root, args.threedpw_root, args.gin_param, args.workers,
                      args.flow_method, args.slic_downsample, args.body_model, progress=not args.no_progress)
    return cli.run(run, args.debug)


if __name__ == "__main__":
    sys.exit(main())
