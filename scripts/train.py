"""Train Motion HMR.

    python scripts/train.py --gin_file=gin/full.gin --model_dir=runs/full [--gin_param="train.num_steps=1000"]
    tensorboard --logdir runs/full

Rerunning the same command resumes from the last checkpoint in --model_dir.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gin_file", action="append", default=[], help="gin config file (repeatable)")
    parser.add_argument("--gin_param", action="append", default=[], help="gin binding, e.g. train.num_steps=10")
    parser.add_argument("--model_dir", required=True, help="checkpoints, TensorBoard logs, operative_config.gin")
    parser.add_argument("--data_service", default=None, help="grpc://HOST:PORT of a tf.data service dispatcher")
    args = parser.parse_args(argv)

    from mhr_tf import train
    train.parse_gin(args.gin_file or ["gin/base.gin"], args.gin_param)
    result = train.train(args.model_dir, data_service=args.data_service)
    print("final:", ", ".join(f"{k}={v:.4g}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
