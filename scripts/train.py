"""Train Motion HMR.

    python scripts/train.py --gin_file gin/full.gin --model_dir runs/full [--gin_param "train.num_steps = 1000"]
    tensorboard --logdir runs/full

Rerunning the same command resumes from the last checkpoint in --model_dir. Ctrl-C saves a checkpoint at the last
finished step and stops (exit status 130); a second Ctrl-C stops at once without saving. A fault (a wrong path, an
unwritable or full disk, every sample bad, a loss that turns NaN) is one line on stderr and exit status 2.
"""
import argparse
import functools
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gin_file", action="append", default=[], help="gin config file (repeatable)")
    parser.add_argument("--gin_param", action="append", default=[], help="gin binding, e.g. train.num_steps=10")
    parser.add_argument("--model_dir", required=True, help="checkpoints, TensorBoard logs, the run's configs")
    parser.add_argument("--data_service", default=None,
                        help="grpc://HOST:PORT of a tf.data service dispatcher (with train.source = 'tfds')")
    from mhr_tf import cli
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    if not args.debug:
        # FFmpeg's own line per unreadable video ("moov atom not found"); the decoder's error names the file.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

    def run():
        from mhr_tf import gin_config
        from mhr_tf.training import loop
        gin_config.parse(args.gin_file or ["gin/base.gin"], args.gin_param)
        explicit = {"data_service": args.data_service} if args.data_service else {}
        result = gin_config.call(functools.partial(loop.train, args.model_dir), "train", **explicit)
        print("final:", ", ".join(f"{k}={v:.4g}" for k, v in result.items()))
    return cli.run(run, args.debug)


if __name__ == "__main__":
    sys.exit(main())
