"""Evaluate Motion HMR on a 3DPW-format split under the paper's protocol and the official 3DPW one (docs/protocols.md).

    python scripts/evaluate.py --model_dir runs/demo --threedpw_root /data/3DPW --body_model /data/smpl \
        --baseline --compare
    python scripts/evaluate.py --saved_model exports/demo --threedpw_root /data/3DPW --body_model /data/smpl

--model_dir rebuilds the network from the run's preprocessing.json and model.json and loads its newest checkpoint
(or --checkpoint); --saved_model loads what scripts/export.py wrote. Both go through the same evaluation, with the
preprocessing contract the model was trained with.
Writes results.md, results.json and plots/<sequence>_person<k>.png into --out (default <model_dir>/eval_<split>, else
./eval_<split>), and TensorBoard scalars into <model_dir>/eval_<split>. For real 3DPW give the official SMPL files
with --body_model: the ground truth is SMPL's, and the open body model only stands in for it on simulator data.
--split all pools train, validation and test as 3DPW's official evaluation does; --pooling overrides each protocol's
own pooling; --joint_regressor (HMR's cocoplus, VIBE's J_regressor_h36m.npy) regresses the paper protocol's joints
from both meshes; --smooth adds rows after One-Euro smoothing of the joints and of the SMPL parameters.
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model_dir", help="training run: checkpoints/, preprocessing.json, model.json")
    source.add_argument("--saved_model", help="export directory (its newest version) or one version directory")
    parser.add_argument("--checkpoint", default=None, help="checkpoint prefix (default: newest in --model_dir)")
    parser.add_argument("--threedpw_root", default=None,
                        help="3DPW-format root with sequenceFiles/ and imageFiles/ (default: the simulator's)")
    parser.add_argument("--split", default="test", choices=("train", "validation", "test", "all"))
    parser.add_argument("--pooling", default=None, choices=("track", "sequence", "frame"),
                        help="default: paper track, official frame")
    parser.add_argument("--joint_regressor", default=None, help="[J, 6890] regressor for the paper protocol")
    parser.add_argument("--smooth", action="store_true", help="also score smoothed predictions")
    parser.add_argument("--sequence", action="append", default=None, help="only these sequences (repeatable)")
    parser.add_argument("--body_model", default=None, help="SMPL model file or directory (default: open body model)")
    parser.add_argument("--out", default=None, help="report directory")
    parser.add_argument("--baseline", action="store_true", help="also evaluate the mean-pose baseline")
    parser.add_argument("--compare", action="store_true", help="print the paper's Table 1 beside our numbers")
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--no_plots", action="store_true")
    from mhr_tf import cli
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    return cli.run(lambda: _evaluate(args), args.debug)


def _evaluate(args):
    from mhr_tf import evaluate
    from mhr_tf.training import inputs
    root = args.threedpw_root or inputs.simulator_root("threedpw")
    out = args.out or (Path(args.model_dir) if args.model_dir else Path(".")) / f"eval_{args.split}"
    results, written = evaluate.run(out, root, args.split, args.model_dir, args.saved_model, args.checkpoint,
                                    args.baseline, args.compare, args.body_model, args.batch_size, not args.no_plots,
                                    args.sequence, pooling=args.pooling, joint_regressor=args.joint_regressor,
                                    smooth=args.smooth)
    print(evaluate.markdown_table(results))
    if args.compare:
        print("\nThe paper's rows are its published numbers on the real 3DPW test set:\n")
        print(evaluate.comparison_table(results))
    for result in results[:1]:
        if "track_count_note" in result.meta:
            print(f"warning: {result.meta['track_count_note']}")
    for result in results:
        if "pve_note" in result.meta:
            print(f"note ({result.name}): {result.meta['pve_note']}")
    print(f"\nwrote {written['markdown']}, {written['json']} and {len(written['plots'])} plots"
          + (f"; TensorBoard: {written['tensorboard']}" if "tensorboard" in written else ""))


if __name__ == "__main__":
    sys.exit(main())
