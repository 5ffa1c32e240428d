"""Camera motion of every background video, cached beside it (paper App. A: TV-L1, computed offline).

    python scripts/preprocess_backgrounds.py --root DIR [--workers 2] [--method tvl1] [--scale 0.5] [--overwrite]

Resumable: videos whose cache is already there are skipped. A video that fails is reported and skipped.
"""
import argparse
import multiprocessing
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _one(job):
    path, method, scale, overwrite = job
    from mhr_tf.data import camera_motion
    try:
        camera_motion.preprocess_video(path, method=method, scale=scale, overwrite=overwrite)
        return path, None
    except Exception as error:  # reported at the end; one broken video does not stop the rest
        return path, f"{type(error).__name__}: {error}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="Kinetics-style folder <root>/<label>/<id>.mp4")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="parallel processes (default: all cores)")
    parser.add_argument("--method", choices=("tvl1", "dis"), default="tvl1",
                        help="flow method: tvl1 as the paper (default) or the much faster dis")
    parser.add_argument("--scale", type=float, default=0.5,
                        help="compute flow on frames scaled by this factor (median flow is rescaled); default 0.5")
    parser.add_argument("--overwrite", action="store_true", help="recompute existing caches")
    args = parser.parse_args(argv)

    from tqdm import tqdm
    from mhr_tf.data import videos
    paths = [str(entry.path) for entry in videos.list_videos(args.root)]
    if not paths:
        sys.exit(f"{args.root}: no videos found (expected <root>/<label>/<id>.mp4)")
    jobs = [(p, args.method, args.scale, args.overwrite) for p in paths]
    failures = []
    with multiprocessing.get_context("spawn").Pool(max(1, args.workers)) as pool:
        for path, error in tqdm(pool.imap_unordered(_one, jobs), total=len(jobs), desc="camera motion",
                                unit="video"):
            if error:
                failures.append((path, error))
    print(f"{len(paths) - len(failures)} of {len(paths)} videos have a camera-motion cache")
    for path, error in failures:
        print(f"  FAILED {path}: {error}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
