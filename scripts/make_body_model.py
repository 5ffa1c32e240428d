"""Write the open body model (SMPL_{NEUTRAL,MALE,FEMALE}.npz, SMPL's keys) into a directory.

    python scripts/make_body_model.py [--out DIR]      # default: mhr_tf.paths.body_model_dir()
"""
import argparse

from mhr_tf import paths
from mhr_tf.body import open_body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="output directory (default: $MHR_TF_HOME/body_models/open)")
    args = parser.parse_args()
    for gender, path in open_body.write_open_body_models(args.out or paths.body_model_dir()).items():
        print(f"{gender}: {path}")


if __name__ == "__main__":
    main()
