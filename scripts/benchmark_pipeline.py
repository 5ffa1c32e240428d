"""Time the training pipeline (mhr_tf.data.pipeline.make_dataset): CPU seconds per clip, clips/s per core and each
stage's share, for the file source and the TFDS source, with DIS and TF TV-L1 flow computed in the pipeline, and TF
TV-L1 placed in the model (the pipeline then sends the pair crops), on simulator data.

    python scripts/benchmark_pipeline.py [--clips 12] [--sources files,tfds] [--backends dis,tf_tvl1]
                                         [--placements pipeline,model] [--parallel 1,2] [--data DIR]
                                                                            # -> benchmarks/pipeline.json
    python scripts/benchmark_pipeline.py --small    # 8 frames, 64-px crops, 2 clips: a smoke run

Paper size: 31-frame clips, 224-px crops, flow + keypoint heatmaps, every training rule on. One thread for TF
intra-op, OpenCV and BLAS. See mhr_tf/bench/pipeline.py for the stages and how they are timed.
"""
import argparse
import sys
from pathlib import Path

from mhr_tf import bench

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="8 frames, 64-px crops, 2 clips: a smoke run")
    parser.add_argument("--clips", type=int, default=None, help="kept clips per measurement (default 12; 2 small)")
    parser.add_argument("--sources", default="files,tfds", help="comma-separated, from files, tfds")
    parser.add_argument("--backends", default="dis,tf_tvl1", help="flow backends, comma-separated, from dis, tf_tvl1")
    parser.add_argument("--placements", default="pipeline,model",
                        help="flow placements, comma-separated, from pipeline, model (model: TF backends only)")
    parser.add_argument("--parallel", default="1,2", help="tf.data thread counts for the end-to-end runs")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder for the simulator data and TFDS records (made if absent, else reused; default: "
                             "a temporary folder)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON report (default benchmarks/pipeline.json, pipeline_small.json with --small)")
    from mhr_tf import cli
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    out = args.out or REPO / "benchmarks" / ("pipeline_small.json" if args.small else "pipeline.json")

    def run():
        bench.pin_threads()  # before numpy and OpenCV load
        from mhr_tf.bench import pipeline
        pipeline.run(out, small=args.small, clips=args.clips, source_kinds=tuple(args.sources.split(",")),
                     backends=tuple(args.backends.split(",")), placements=tuple(args.placements.split(",")),
                     threads=tuple(int(n) for n in args.parallel.split(",")), data=args.data)
    return cli.run(run, args.debug)


if __name__ == "__main__":
    sys.exit(main())
