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
    from mhr_tf.body import open_body
    from mhr_tf.sim import preview
    run = Path(args.out) if args.out else paths.home() / "demo"
    run.mkdir(parents=True, exist_ok=True)
    began = time.time()
    written = open_body.write_open_body_models(paths.body_model_dir())
    print("open body model:", ", ".join(str(p) for p in written.values()))
    sheet = preview.body_sheet(run / "body_model.png")
    print(f"body model picture: {sheet}")
    print(f"demo finished in {time.time() - began:.0f} s; run folder: {run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
