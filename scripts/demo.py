"""`make demo`: the main job on the built-in simulator data, into one run folder whose path it prints.

Stages (each reuses what an earlier run cached):
  1. the open body model, and a picture of it in several shapes and poses.
"""
import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="run folder (default: $MHR_TF_HOME/demo)")
    args = parser.parse_args(argv)

    from mhr_tf import paths
    from mhr_tf.body import smpl
    from mhr_tf.sim import preview
    run = Path(args.out) if args.out else paths.home() / "demo"
    run.mkdir(parents=True, exist_ok=True)
    began = time.time()
    for gender in ("neutral", "female", "male"):  # built into the cache on first use
        print(f"open body model ({gender}): {smpl.load_body_model(None, gender).source}")
    sheet = preview.body_sheet(run / "body_model.png")
    print(f"body model picture: {sheet}")
    print(f"demo finished in {time.time() - began:.0f} s; run folder: {run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
