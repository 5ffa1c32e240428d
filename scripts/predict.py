"""Run Motion HMR on the people of a video: each person tracked with an id, per-frame SMPL parameters, 3D joints and
camera, optional smoothing and exports, and an overlay video (docs/predict_walkthrough.md).

    python scripts/predict.py --video clip.mp4 --keypoints movenet_multipose.tflite --saved_model exports/demo \
        --out pred/ --smooth --export amass,bvh,obj
    python scripts/predict.py --threedpw 3DPW/sequenceFiles/test/downtown_walking_00.pkl --model_dir runs/demo \
        --person 0 --out pred/

--keypoints is OpenPose --write_json output, COCO/mmpose JSON, a 3DPW .pkl, or a pose model file (.tflite MoveNet,
.onnx RTMPose/RTMO) run on the video's frames. Writes people.json, overlay.mp4 and person_<id>/ (predictions.npz,
predictions.json, exports) into --out; the format is described in mhr_tf/predict.py.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=None, help="the video (without it: a 3DPW sequence's imageFiles)")
    parser.add_argument("--keypoints", default=None, help="keypoint FILE|DIR|MODEL (default: --threedpw's poses2d)")
    parser.add_argument("--threedpw", default=None, help="3DPW sequence .pkl: its frames and poses2d")
    parser.add_argument("--person", default="all", help="all (default), a track id, longest or largest")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--saved_model", help="export directory (its newest version) or one version directory")
    model.add_argument("--model_dir", help="training run: checkpoints/, preprocessing.json, model.json")
    parser.add_argument("--checkpoint", default=None, help="checkpoint prefix (default: newest in --model_dir)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--smooth", action="store_true", help="One-Euro smoothing of each person's parameters")
    parser.add_argument("--export", default="", help="comma-separated: amass, bvh, obj")
    parser.add_argument("--keypoint_threshold", type=float, default=None,
                        help="the source's 'keypoint found' score, mapped onto the contract's (default: a model "
                             "file's kind; OpenPose/3DPW unchanged)")
    parser.add_argument("--bvh_body_model", default=None, help="SMPL file whose skeleton the BVH uses (default open)")
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--no_overlay", action="store_true", help="skip overlay.mp4")
    parser.add_argument("--save_vertices", action="store_true", help="add vertices [N, V, 3] to predictions.npz")
    parser.add_argument("--keep_frames", action="store_true", help="keep the decoded frames in <out>/frames")
    from mhr_tf import cli
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    return cli.run(lambda: _predict(args), args.debug)


def _predict(args):
    from mhr_tf import evaluate, predict
    predictor = evaluate.load_predictor(args.model_dir, args.saved_model, args.checkpoint)
    written = predict.predict_video(
        predictor, args.out, args.video, args.keypoints, args.threedpw, args.person, args.batch_size,
        not args.no_overlay, args.save_vertices, args.keep_frames, progress=True, smooth=args.smooth,
        export=tuple(k for k in args.export.split(",") if k), keypoint_threshold=args.keypoint_threshold,
        bvh_body_model=args.bvh_body_model)
    content = json.loads(written["json"].read_text())
    for person in content["people"]:
        print(f"person {person['id']}: frames {person['first_frame']}-{person['last_frame']}, "
              f"{person['frames_predicted']} predicted, missing {person['missing_frames']}, "
              f"{len(person['frames_too_few_keypoints'])} with too few keypoints -> {args.out}/{person['folder']}")
    print("wrote " + ", ".join(str(written[k]) for k in ("json", "overlay") if k in written))


if __name__ == "__main__":
    sys.exit(main())
