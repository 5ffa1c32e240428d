"""Export a trained Motion HMR as a SavedModel in TF Serving's layout, <export_dir>/<version>/.

    python scripts/export.py --model_dir runs/demo --export_dir exports/demo [--version 2]
    docker run -p 8501:8501 -v $PWD/exports/demo:/models/mhr -e MODEL_NAME=mhr tensorflow/serving
    # POST {"inputs": <[B, T-1, S, S, C] pairs>} to http://localhost:8501/v1/models/mhr:predict

The signature (serving_default) takes the preprocessed paired-box inputs [B, T-1, S, S, C] and returns pose, betas,
camera, joints3d, smpl_joints3d, keypoints2d and vertices for all T frames; see mhr_tf/export.py.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="training run: checkpoints/, preprocessing.json, model.json")
    parser.add_argument("--export_dir", required=True, help="TF Serving's model base path")
    parser.add_argument("--version", type=int, default=None, help="version number (default: the next one)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint prefix (default: newest in --model_dir)")
    from mhr_tf import cli
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    return cli.run(lambda: _export(args), args.debug)


def _export(args):
    from mhr_tf import export
    path = export.export_checkpoint(args.model_dir, args.export_dir, args.version, args.checkpoint)
    meta = export.load_metadata(path)
    print(f"exported {meta.source} (step {meta.step}) to {path}")
    print(f"signature '{export.SIGNATURE}': input '{export.INPUT_NAME}' float32 "
          f"{export.input_spec(meta.pre).shape.as_list()} (channels {', '.join(meta.pre.channels.names)}); outputs "
          f"{', '.join(export.SERVING_OUTPUTS)} for {meta.pre.num_frames} frames")


if __name__ == "__main__":
    sys.exit(main())
