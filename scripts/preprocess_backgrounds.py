"""Camera motion and SLIC superpixels of every background video, cached beside it (paper App. A, computed offline).

    python scripts/preprocess_backgrounds.py --root DIR --num_frames 31 [--workers 2] [--method tvl1] [--scale 0.5]
        [--slic_downsample 1] [--overwrite]

Writes <video>.motion.npz (median flow per frame) and <video>.windows_t<T>.npz (the stored windows' SLIC labels for
T-frame clips, mhr_tf/data/background_windows.py) beside each video. Resumable: videos whose caches are there are
skipped. A video that fails is reported and skipped.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="Kinetics-style folder <root>/<label>/<id>.mp4")
    parser.add_argument("--num_frames", type=int, default=31, help="clip length T the windows serve (default 31)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="parallel processes (default: all cores)")
    parser.add_argument("--method", choices=("tvl1", "dis"), default="tvl1",
                        help="flow method: tvl1 as the paper (default) or the much faster dis")
    parser.add_argument("--scale", type=float, default=0.5,
                        help="compute flow on frames scaled by this factor (median flow is rescaled); default 0.5")
    parser.add_argument("--slic_downsample", type=int, default=1,
                        help="SLIC on every n-th pixel (1 = the paper's settings; 2 is ~4x faster)")
    parser.add_argument("--overwrite", action="store_true", help="recompute existing caches")
    from mhr_tf import cli
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    failures = []

    def run():
        from mhr_tf.data import background_windows
        failures.extend(background_windows.preprocess_folder(
            args.root, args.num_frames, args.workers, flow_method=args.method, flow_scale=args.scale,
            slic_downsample=args.slic_downsample, overwrite=args.overwrite))
        for path, error in failures:
            print(f"  FAILED {path}: {error}", file=sys.stderr)
    code = cli.run(run, args.debug)
    return code or (1 if failures else 0)


if __name__ == "__main__":
    sys.exit(main())
