"""Write a simulated dataset in a real file format (the simulator, `mhr_tf.sim`).

    python scripts/make_synthetic.py {surreal,backgrounds,threedpw} --out DIR --num_sequences N --frames T
        [--seed S] [--workers W] [--split NAME] [--body_model PATH] [--preview]
        [--domain {in,shifted}] [--knob NAME=VALUE ...]      (threedpw only)

surreal      SURREAL's layout: DIR/{train,val,test}/run0/simNNNNN/simNNNNN_c0001.mp4 + _info/_segm/_depth.mat
             (by default 8 of every 10 sequences in train, then one in val and one in test; --split puts all in one)
backgrounds  Kinetics-style moving background videos: DIR/sim_<camera>/simulated_<seed>_<index>.mp4 (+ .json)
threedpw     an evaluation set in 3DPW's layout, always named simulated:
             DIR/sequenceFiles/{train,validation,test}/simulated_NNNNN.pkl + DIR/imageFiles/simulated_NNNNN/*.jpg
             (by default train, validation, test in turn; --split puts all in one), rendered in the shifted domain
             (--domain shifted, the default) or like the training data (--domain in); --knob sets one of the
             domain's knobs (mhr_tf/sim/domain.py), e.g. --domain in --knob detector_noise=1. The set's record,
             DIR/mhr_tf_sim.json, stores every knob's value.

Deterministic given --seed, whatever --workers. --preview writes DIR/preview.png, a contact sheet of what the
decoders read back. The last line printed is the throughput in sequences per minute per worker.
"""
import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("surreal", "backgrounds", "threedpw"))
    parser.add_argument("--out", required=True, type=Path, help="the dataset's root folder")
    parser.add_argument("--num_sequences", type=int, required=True, help="sequences (videos, for backgrounds)")
    parser.add_argument("--frames", type=int, required=True, help="frames per sequence (30 fps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    parser.add_argument("--split", default=None, help="put every sequence into this split (surreal, threedpw)")
    parser.add_argument("--body_model", default=None,
                        help="SMPL model file or folder (default: the open body model)")
    parser.add_argument("--preview", action="store_true", help="also write DIR/preview.png")
    parser.add_argument("--domain", choices=("in", "shifted"), default=None,
                        help="threedpw: render like the training data (in) or in the shifted domain (default)")
    parser.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                        help="threedpw: set one knob of the domain (repeatable)")
    args = parser.parse_args(argv)
    if args.kind != "threedpw" and (args.domain or args.knob):
        parser.error(f"--domain and --knob apply to threedpw, not {args.kind}")
    if args.workers > 1:  # one BLAS thread per worker process: the workers already fill the cores
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")

    from mhr_tf.sim import domain as domains
    from mhr_tf.sim import make
    domain = None
    if args.kind == "threedpw":
        try:
            domain = domains.named(args.domain, args.knob)
        except ValueError as error:
            parser.error(str(error))
    if args.kind != "backgrounds":  # bodies loaded (and the open model built) before the clock starts
        make.preload_bodies(args.body_model)
    began = time.perf_counter()
    paths = make.write_set(args.kind, args.out, args.num_sequences, args.frames, args.seed, workers=args.workers,
                           split=args.split, body_model_path=args.body_model, domain=domain)
    seconds = time.perf_counter() - began
    print(f"wrote {len(paths)} {args.kind} sequences of {args.frames} frames into {args.out}")
    if args.preview:
        print(f"preview: {make.preview(args.kind, args.out, args.out / 'preview.png')}")
    workers = max(1, min(args.workers, len(paths)))
    print(f"{seconds:.1f} s with {workers} worker(s): {60.0 * len(paths) / seconds / workers:.1f} sequences/min "
          f"per worker")
    return 0


if __name__ == "__main__":
    sys.exit(main())
