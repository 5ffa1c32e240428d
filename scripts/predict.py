"""Run Motion HMR on one person of a video: per-frame SMPL parameters, 3D joints and camera, and an overlay video.

    python scripts/predict.py --video clip.mp4 --keypoints openpose_json/ --saved_model exports/demo --out pred/
    python scripts/predict.py --threedpw 3DPW/sequenceFiles/test/downtown_walking_00.pkl --person 0 \
        --model_dir runs/demo --out pred/

2D keypoints are required (they place the person's box, and keypoint models read them): OpenPose JSON from
`openpose --video clip.mp4 --write_json openpose_json/` (COCO-18 or BODY_25), or a 3DPW sequence's poses2d. Writes
predictions.npz, predictions.json and overlay.mp4 into --out; the format is described in mhr_tf/predict.py.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", default=None, help="the video (without it: a 3DPW sequence's imageFiles)")
    parser.add_argument("--keypoints", default=None, help="directory of OpenPose *_keypoints.json, one per frame")
    parser.add_argument("--threedpw", default=None, help="3DPW sequence .pkl whose poses2d give the keypoints")
    parser.add_argument("--person", type=int, default=0, help="person index in the 3DPW sequence")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--saved_model", help="export directory (its newest version) or one version directory")
    model.add_argument("--model_dir", help="training run: checkpoints/, preprocessing.json, model.json")
    parser.add_argument("--checkpoint", default=None, help="checkpoint prefix (default: newest in --model_dir)")
    parser.add_argument("--out", required=True, help="output directory")
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
    written = predict.predict_video(predictor, args.out, args.video, args.keypoints, args.threedpw, args.person,
                                    args.batch_size, not args.no_overlay, args.save_vertices, args.keep_frames,
                                    progress=True)
    content = json.loads(written["json"].read_text())
    print(f"{content['num_frames']} frames: {sum(f['status'] == 'ok' for f in content['frames'])} predicted, "
          f"{len(content['frames_without_person'])} without the person, {len(content['frames_too_few_keypoints'])} "
          "with fewer than 7 keypoints (not predicted)")
    print("wrote " + ", ".join(str(p) for p in written.values()))


if __name__ == "__main__":
    sys.exit(main())
