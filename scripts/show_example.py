"""Draw one training example as the pipeline makes it: every rule of the paper's data construction at work.

    python scripts/show_example.py [--index 3] [--out show_example]            # gin/demo.gin on `make demo`'s data
    python scripts/show_example.py --model_dir RUN --index 3                    # the contract RUN trained with
    python scripts/show_example.py --gin_file gin/full.gin --surreal_root S --background_root B --all_channels

Writes <out>/example_<index>.png (per pair: SURREAL person, background with SLIC edges and the applied occluder,
composite with the box and visible/hidden keypoints, the pair's crop, colour-coded flow, heatmaps over the crop) and
<out>/example_<index>.mp4 (composite | flow | heatmaps). The contract comes from --model_dir's preprocessing.json or
from gin (default gin/demo.gin); the background videos need their window caches for its clip length
(scripts/preprocess_backgrounds.py --num_frames T). Data roots default to the simulator's.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", default=None, help="a training run: draw with its preprocessing.json")
    parser.add_argument("--gin_file", action="append", default=[], help="gin file of the contract (default "
                                                                        "gin/demo.gin; repeatable)")
    parser.add_argument("--gin_param", action="append", default=[],
                        help="gin binding, e.g. \"Preprocessing.num_frames = 16\" (repeatable)")
    parser.add_argument("--surreal_root", default=None, help="SURREAL-layout root (default: the simulator's)")
    parser.add_argument("--background_root", default=None, help="background videos (default: the simulator's)")
    parser.add_argument("--index", type=int, default=0, help="example index in the training stream (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="the stream's seed, as train.seed (default 0)")
    parser.add_argument("--all_channels", action="store_true",
                        help="draw RGB, flow and heatmaps even where the contract leaves some out")
    parser.add_argument("--no_movie", action="store_true", help="write only the PNG")
    parser.add_argument("--out", default="show_example", help="output folder (default ./show_example)")
    from mhr_tf import cli
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)

    def run():
        from mhr_tf.experiments import show_example
        written = show_example.run(args.out, model_dir=args.model_dir, gin_files=args.gin_file,
                                   gin_params=args.gin_param, surreal_root=args.surreal_root,
                                   background_root=args.background_root, index=args.index, seed=args.seed,
                                   all_channels=args.all_channels, movie=not args.no_movie)
        print("wrote " + " and ".join(str(p) for p in written.values()))
    return cli.run(run, args.debug)


if __name__ == "__main__":
    sys.exit(main())
