"""`make demo`: the main job end to end on the built-in simulator data, into one run folder whose path it prints.

    python scripts/demo.py [--out DIR] [--gin_param 'train.num_steps = 600'] [--workers 2] [--flow_method dis]

Stages (a rerun reuses every stage whose result is complete: data sets whose record matches, camera-motion caches,
a checkpoint at the last step, a SavedModel of that checkpoint):
  1. the open body model (built into $MHR_TF_HOME on first use) and a picture of it;
  2. simulated data in the real formats, under $MHR_TF_HOME/sim/<kind> (where every other script looks by default):
     SURREAL-layout clips (train/val/test), Kinetics-style background videos, and the shifted-domain evaluation set
     in 3DPW's layout (train/validation/test), each with a preview picture;
  3. the backgrounds' camera motion (paper App. A), cached beside each video;
  4. training gin/demo.gin (progress bar; TensorBoard logs in <run>/model);
  5. evaluation of the checkpoint and of the mean-pose baseline on the shifted-domain test split (both protocols);
  6. export as a SavedModel, and the same evaluation through it (the numbers must agree);
  7. prediction on one shifted-domain test video (predictions.npz/json, overlay.mp4);
  8. a picture of one training example (show_example), and <run>/summary.md with the tables and pictures.

Exits 1 if the trained model does not beat the mean-pose baseline (PA-MPJPE, paper protocol), or if the SavedModel's
numbers differ from the checkpoint's.
"""
import argparse
import dataclasses
import importlib.util
import json
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
DEMO_GIN = "gin/demo.gin"
SEED = 0


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """One simulated set of the demo: `make.write_set(kind, root, num_sequences, num_frames, SEED, split=None)`."""
    kind: str
    num_sequences: int
    num_frames: int


# Sizes chosen so the whole demo fits in 15 minutes on 2 cores. SURREAL: 24 sequences give 19 train, 3 val and 2
# test clips (make.SURREAL_SPLIT_CYCLE); the shifted-domain set's 6 sequences give 2 per 3DPW split, so the test
# split (paper §4: evaluation on test only) has 2 sequences of one or two people. 40 frames at 30 fps.
DEMO_DATA = (DataSpec("surreal", 24, 40), DataSpec("backgrounds", 8, 48), DataSpec("threedpw", 6, 40))
# App. A computes the backgrounds' camera motion with TV-L1; DIS gives the same median flow on these smooth
# simulated camera paths at a fraction of the cost, which the 15-minute budget needs (see the summary).
DEMO_FLOW_METHOD = "dis"
FLOW_SCALE = 0.5
SAVED_MODEL_TOLERANCE_MM = 0.5  # checkpoint vs SavedModel: the same graph, float32 reordering only


class Stages:
    """Wall time of each stage, for the summary."""

    def __init__(self):
        self.began = time.time()
        self.seconds: dict[str, float] = {}
        self.notes: dict[str, str] = {}

    def run(self, name: str, fn, *args, **kwargs):
        print(f"\n== {name}", flush=True)
        start = time.time()
        result = fn(*args, **kwargs)
        self.seconds[name] = time.time() - start
        print(f"   {name}: {self.seconds[name]:.0f} s", flush=True)
        return result

    def note(self, name: str, text: str) -> None:
        self.notes[name] = text
        print(f"   {text}", flush=True)

    def table(self) -> str:
        lines = ["| stage | seconds | |", "|---|---|---|"]
        lines += [f"| {name} | {s:.0f} | {self.notes.get(name, '')} |" for name, s in self.seconds.items()]
        lines.append(f"| **total** | **{time.time() - self.began:.0f}** | |")
        return "\n".join(lines)


# ---- stages --------------------------------------------------------------------------------------------------------

def body_model_stage(stages: Stages, run: Path) -> Path:
    from mhr_tf.body import smpl
    from mhr_tf.sim import preview
    for gender in ("neutral", "female", "male"):  # built into the cache on first use
        print(f"   open body model ({gender}): {smpl.load_body_model(None, gender).source}")
    png = run / "body_model.png"
    if not png.exists():
        preview.body_sheet(png)
    return png


def _record_matches(record: dict | None, spec: DataSpec) -> bool:
    return bool(record) and all(record.get(k) == v for k, v in (
        ("kind", spec.kind), ("seed", SEED), ("num_sequences", spec.num_sequences),
        ("num_frames", spec.num_frames))) and record.get("split") is None


def data_stage(stages: Stages, run: Path, spec: DataSpec, workers: int) -> Path:
    """The set under $MHR_TF_HOME/sim/<kind>, reused when its record says it is the one we want; a cached set of
    another size, or an unfinished one, is replaced (that folder is the simulator's cache)."""
    from mhr_tf import train
    from mhr_tf.sim import make
    root = train.simulator_root(spec.kind)
    if _record_matches(make.read_set_record(root), spec):
        stages.note(spec.kind, f"reused {root}")
    else:
        if root.exists():
            print(f"   {root}: no complete set of this size; writing it again")
            shutil.rmtree(root)
        make.write_set(spec.kind, root, spec.num_sequences, spec.num_frames, SEED, workers=workers)
        stages.note(spec.kind, f"{spec.num_sequences} × {spec.num_frames} frames written to {root}")
    png = run / f"preview_{spec.kind}.png"
    make.preview(spec.kind, root, png)
    return png


def _camera_motion_job(job):
    path, method = job
    from mhr_tf.data import camera_motion
    camera_motion.preprocess_video(path, method=method, scale=FLOW_SCALE)
    return path


def camera_motion_stage(stages: Stages, background_root: Path, method: str, workers: int) -> None:
    """Each video's median flow (App. A), cached beside it; cached ones are skipped. Forked workers share the
    parent's modules (no second TensorFlow import)."""
    from tqdm import tqdm
    from mhr_tf.data import camera_motion, videos
    paths = [str(e.path) for e in videos.list_videos(background_root)]
    todo = [p for p in paths if not camera_motion.cache_path(p).exists()]
    if todo:
        method_ctx = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method_ctx).Pool(max(1, min(workers, len(todo)))) as pool:
            for _ in tqdm(pool.imap_unordered(_camera_motion_job, [(p, method) for p in todo]), total=len(todo),
                          desc="camera motion", unit="video"):
                pass
    stages.note("camera motion", f"{len(todo)} of {len(paths)} videos computed with {method!r} "
                                 f"(scale {FLOW_SCALE}), {len(paths) - len(todo)} cached")


def _checkpoint_step(model_dir: Path) -> int:
    """The step of the newest checkpoint (its `ckpt-<step>` name, as train() numbers them), 0 without one."""
    import tensorflow as tf
    latest = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def train_stage(stages: Stages, model_dir: Path, roots: dict, gin_params) -> int:
    import gin
    from mhr_tf import train
    with gin.unlock_config():
        gin.clear_config()
        train.parse_gin([DEMO_GIN], gin_params)
    num_steps = int(gin.query_parameter("train.num_steps"))
    done = _checkpoint_step(model_dir)
    if done >= num_steps:
        stages.note("training", f"reused the checkpoint at step {done} in {model_dir}")
        return done
    last = train.train(model_dir, surreal_root=roots["surreal"], background_root=roots["backgrounds"],
                       threedpw_root=roots["threedpw"])
    stages.note("training", f"{num_steps} steps (from step {done}); last loss {last.get('total', float('nan')):.3f}, "
                            f"val PA-MPJPE {last.get('val_pa_mpjpe_mm', float('nan')):.0f} mm; TensorBoard: "
                            f"tensorboard --logdir {model_dir}")
    return num_steps


def export_stage(stages: Stages, model_dir: Path, export_dir: Path, step: int) -> Path:
    """The SavedModel of the checkpoint at `step`: an existing version exported from it is reused."""
    from mhr_tf import export
    if export_dir.is_dir():
        for version in sorted((p for p in export_dir.iterdir() if p.name.isdigit()), key=lambda p: -int(p.name)):
            try:
                config, _ = export.load_metadata(version)
            except Exception:  # not one of ours, or unfinished: export anew
                continue
            if config.step == step:
                stages.note("export", f"reused {version} (step {step})")
                return version
    path = export.export_checkpoint(model_dir, export_dir)
    stages.note("export", f"exported step {step} to {path}")
    return path


def overlay_still(mp4: Path, png: Path) -> Path:
    """The middle frame of the overlay video as a PNG (for the summary)."""
    import cv2
    capture = cv2.VideoCapture(str(mp4))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.set(cv2.CAP_PROP_POS_FRAMES, max(count // 2, 0))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise OSError(f"{mp4}: could not read frame {count // 2} of {count}")
    cv2.imwrite(str(png), frame)
    return png


def show_example_stage(run: Path, roots: dict, num_frames: int, crop_size: int) -> Path:
    """scripts/show_example.py's picture of one training example, in this process (its main takes argv)."""
    spec = importlib.util.spec_from_file_location("show_example", REPO / "scripts" / "show_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--surreal_root", str(roots["surreal"]), "--background_root", str(roots["backgrounds"]),
                 "--num_frames", str(num_frames), "--crop_size", str(crop_size), "--gin_file", DEMO_GIN,
                 "--out", str(run / "example")])
    return run / "example" / "example_0.png"


# ---- summary ---------------------------------------------------------------------------------------------------------

def _rel(path: Path, run: Path) -> str:
    return os.path.relpath(path, run)


def _load_average() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def write_summary(run: Path, stages: Stages, results, saved_result, pictures: dict, plots, written: dict,
                  verdict: str, flow_method: str) -> Path:
    from mhr_tf import evaluate
    model, baseline = results
    diff = _saved_model_difference(model, saved_result)
    text = [
        "# mhr_tf demo",
        "",
        "Everything here comes from the built-in simulator (open body model, simulated SURREAL-format clips, "
        "simulated background videos, and a simulated *shifted-domain* set in 3DPW's file format). None of it is "
        "SURREAL, Kinetics or 3DPW, and the numbers below are not comparable with the paper's real-3DPW numbers.",
        "",
        f"**{verdict}**",
        "",
        "## Evaluation on the shifted-domain test split",
        "",
        evaluate.markdown_table([model, baseline]),
        "",
        f"The SavedModel gives the same numbers (largest difference {diff:.3f} mm):",
        "",
        evaluate.markdown_table([saved_result]),
        "",
        "Protocols: " + "; ".join(f"**{p.title}**: {len(p.joint_names)} joints, centred on {'+'.join(p.root)}, "
                                  f"frames with {p.frames}" for p in evaluate.PROTOCOLS) + ".",
        "",
        "## Pictures",
        "",
        f"The body model in several shapes and poses:\n\n![body model]({_rel(pictures['body'], run)})",
        "",
    ]
    for kind, png in pictures["data"].items():
        text += [f"Simulated {kind} set, as the decoders read it back:\n\n![{kind}]({_rel(png, run)})", ""]
    text += [f"One training example through every step of the pipeline (demo size: {pictures['example_note']}):"
             f"\n\n![example]({_rel(pictures['example'], run)})", ""]
    text += ["Per-frame errors (paper protocol) of the model and the baseline:", ""]
    text += [f"![{p.stem}]({_rel(p, run)})" for p in plots] + [""]
    text += [f"A frame of the prediction overlay ({_rel(written['overlay'], run)}):\n\n"
             f"![overlay]({_rel(pictures['overlay'], run)})", ""]
    text += ["## Files", "",
             f"- model and TensorBoard logs: `{_rel(pictures['model_dir'], run)}` "
             f"(`tensorboard --logdir {pictures['model_dir']}`)",
             f"- SavedModel: `{_rel(pictures['saved_model'], run)}`",
             f"- evaluation reports: `eval/results.md`, `eval/results.json`, `eval_saved_model/`",
             f"- prediction: " + ", ".join(f"`{_rel(p, run)}`" for p in written.values()), "",
             "## Time", "", stages.table(), "",
             f"Camera motion of the backgrounds computed with {flow_method!r}"
             + (" instead of the paper's TV-L1, to fit the 15-minute budget." if flow_method != "tvl1" else "."),
             f"Load average at the end (1/5/15 min): {_load_average()} on {os.cpu_count()} cores.", ""]
    path = run / "summary.md"
    path.write_text("\n".join(text))
    return path


def _saved_model_difference(model, saved) -> float:
    from mhr_tf import evaluate
    import numpy as np
    gaps = [abs(model.summary[p.name][f"{m}_mm"] - saved.summary[p.name][f"{m}_mm"])
            for p in evaluate.PROTOCOLS for m in evaluate.METRICS]
    gaps = [g for g in gaps if np.isfinite(g)]
    return max(gaps) if gaps else 0.0


# ---- main ------------------------------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="run folder (default: $MHR_TF_HOME/demo/run)")
    parser.add_argument("--gin_param", action="append", default=[], help="extra gin binding over gin/demo.gin")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes for the simulator and the camera motion (default: all cores)")
    parser.add_argument("--flow_method", choices=("dis", "tvl1"), default=DEMO_FLOW_METHOD,
                        help="background camera motion (App. A uses tvl1; the demo uses dis for time)")
    args = parser.parse_args(argv)

    from mhr_tf import evaluate, paths, predict, train
    from mhr_tf.data import threedpw
    run = Path(args.out) if args.out else paths.home() / "demo" / "run"
    run.mkdir(parents=True, exist_ok=True)
    print(f"run folder: {run}")
    stages = Stages()

    body_png = stages.run("body model", body_model_stage, stages, run)
    previews = {spec.kind: stages.run(spec.kind, data_stage, stages, run, spec, args.workers) for spec in DEMO_DATA}
    roots = {spec.kind: train.simulator_root(spec.kind) for spec in DEMO_DATA}
    stages.run("camera motion", camera_motion_stage, stages, roots["backgrounds"], args.flow_method, args.workers)

    model_dir = run / "model"
    step = stages.run("training", train_stage, stages, model_dir, roots, args.gin_param)

    def evaluate_model_and_baseline():
        tracks = threedpw.load_split(roots["threedpw"], evaluate.SPLIT)
        checkpoint = evaluate.checkpoint_predictor(model_dir)
        config = checkpoint.config
        baseline = evaluate.mean_pose_predictor(config.num_frames, config.crop_size)
        results = [evaluate.evaluate(p, roots["threedpw"], evaluate.SPLIT, tracks, progress=True)
                   for p in (checkpoint, baseline)]
        written = evaluate.write_report(results, run / "eval", compare=True)
        evaluate.write_summaries(results[0], model_dir / "eval_test", step)
        print(evaluate.markdown_table(results))
        return results, written, config
    results, report, config = stages.run("evaluation", evaluate_model_and_baseline)

    saved_model = stages.run("export", export_stage, stages, model_dir, run / "saved_model", step)

    def evaluate_saved_model():
        predictor = evaluate.saved_model_predictor(saved_model)
        result = evaluate.evaluate(predictor, roots["threedpw"], evaluate.SPLIT, progress=True)
        evaluate.write_report([result], run / "eval_saved_model", plots=False)
        print(evaluate.markdown_table([result]))
        return predictor, result
    saved_predictor, saved_result = stages.run("SavedModel evaluation", evaluate_saved_model)

    def predict_one():
        sequence = sorted((roots["threedpw"] / threedpw.SEQUENCE_DIR / evaluate.SPLIT).glob("*.pkl"))[0]
        written = predict.predict_video(saved_predictor, run / "predict", threedpw_sequence=sequence, person=0,
                                        progress=True)
        stages.note("prediction", f"{sequence.stem}, person 0 -> {written['overlay']}")
        return written
    written = stages.run("prediction", predict_one)
    overlay_png = overlay_still(written["overlay"], run / "overlay_frame.png")
    example_png = stages.run("example picture", show_example_stage, run, roots, config.num_frames, config.crop_size)

    model_result, baseline_result = results
    ours = model_result.summary[evaluate.PAPER.name]["pa_mpjpe_mm"]
    base = baseline_result.summary[evaluate.PAPER.name]["pa_mpjpe_mm"]
    diff = _saved_model_difference(model_result, saved_result)
    beats = ours < base
    verdict = (f"The trained model ({ours:.1f} mm) {'beats' if beats else 'does NOT beat'} the mean-pose baseline "
               f"({base:.1f} mm) in PA-MPJPE, paper protocol, on the shifted-domain test split.")
    pictures = {"body": body_png, "data": previews, "example": example_png, "overlay": overlay_png,
                "example_note": f"{config.num_frames} frames, {config.crop_size}-px crops",
                "model_dir": model_dir, "saved_model": saved_model}
    summary = write_summary(run, stages, results, saved_result, pictures, report["plots"], written, verdict,
                            args.flow_method)
    print(f"\n{verdict}")
    print(f"SavedModel vs checkpoint: largest difference {diff:.3f} mm")
    print(f"demo finished in {time.time() - stages.began:.0f} s (load average {_load_average()}); "
          f"summary: {summary}\nrun folder: {run}")
    if diff > SAVED_MODEL_TOLERANCE_MM:
        print(f"FAILED: the SavedModel's numbers differ from the checkpoint's by {diff:.3f} mm", file=sys.stderr)
        return 1
    return 0 if beats else 1


if __name__ == "__main__":
    sys.exit(main())
