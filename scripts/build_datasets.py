"""Build a TFDS dataset of mhr_tf from the manual-download directory, with Apache Beam.

    python scripts/build_datasets.py NAME[/CONFIG] --data_dir DIR --manual_dir DIR [--beam_runner DirectRunner]
        [--body_model PATH] [--config_override KEY=VALUE ...] [--no_beam] [BEAM PIPELINE OPTIONS ...]

NAME/CONFIG: surreal_clips/clips (SURREAL's clips, whole) or surreal_clips/sim_clips (the simulator's);
background_clips/t31 (windows for 31-frame clips; also t8, t16, t56) or background_clips/sim_t31, ... Example, the
simulator's data end to end on this machine, on both cores:

    python scripts/make_synthetic.py surreal --out ~/tensorflow_datasets/downloads/manual/sim_surreal \\
        --num_sequences 20 --frames 100
    python scripts/build_datasets.py surreal_clips/sim_clips --direct_num_workers=2 \\
        --direct_running_mode=multi_processing

Any argument this script does not know is passed to Beam's PipelineOptions (`--runner_help` shows cluster runners).
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _overrides(pairs):
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"--config_override {pair!r}: expected KEY=VALUE, e.g. slic_downsample=2")
        out[key] = value
    return out


def main(argv=None):
    from mhr_tf import datasets
    parser = argparse.ArgumentParser(description=__doc__, epilog=datasets.RUNNER_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", help="DATASET[/CONFIG], e.g. surreal_clips/sim_t31")
    parser.add_argument("--data_dir", default=None, help="where TFDS writes (default ~/tensorflow_datasets)")
    parser.add_argument("--manual_dir", default=None,
                        help="the manual-download directory (default <data_dir>/downloads/manual)")
    parser.add_argument("--beam_runner", default="DirectRunner", help="Beam runner (default DirectRunner)")
    parser.add_argument("--body_model", default=None,
                        help="SMPL-layout model file or folder for the 14 evaluation joints (default: the open model)")
    parser.add_argument("--config_override", action="append", default=[], metavar="KEY=VALUE",
                        help="change a setting of the config, e.g. stride=8 or slic_downsample=2 (repeatable)")
    parser.add_argument("--max_examples_per_split", type=int, default=None, help="for a quick trial build")
    parser.add_argument("--no_beam", action="store_true", help="build in this process without Beam")
    parser.add_argument("--runner_help", action="store_true", help="print how to run on Flink, Spark or Dataflow")
    args, pipeline_args = parser.parse_known_args(argv)
    if args.runner_help:
        print(datasets.RUNNER_HELP)
        return 0
    if not args.name:
        parser.error("NAME is required (surreal_clips or background_clips, with /CONFIG)")
    built = datasets.build(args.name, args.data_dir, args.manual_dir, beam_runner=args.beam_runner,
                           pipeline_args=pipeline_args, body_model_path=args.body_model,
                           use_beam=False if args.no_beam else None, config_overrides=_overrides(args.config_override),
                           max_examples_per_split=args.max_examples_per_split)
    print(f"{built.name}/{built.builder_config.name} {built.version} in {built.data_dir}:")
    for split, info in built.info.splits.items():
        print(f"  {split}: {info.num_examples} examples in {info.num_shards} shard(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
