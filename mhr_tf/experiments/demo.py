"""`make demo`: the main job end to end on the built-in simulator's data, into one run folder.

Stages (each timed; a rerun reuses every stage whose result is complete and was made from the same inputs):
  1. the open body model (built into $MHR_TF_HOME on first use) and a picture of it;
  2. simulated data in the real formats under $MHR_TF_HOME/sim/<kind> (where every script looks by default):
     SURREAL-layout clips (train/val/test), Kinetics-style background videos, and the shifted-domain evaluation set
     in 3DPW's layout (train/validation/test), each with a preview picture — reused when the set's record matches;
  3. the backgrounds' camera motion (App. A) and their stored windows with SLIC superpixels for the demo's clip
     length, cached beside each video (`background_windows.preprocess_folder`, worker processes);
  4. training gin/demo.gin (progress bar; TensorBoard logs in <run>/model) — reused at the last step;
  5. evaluation of the checkpoint and of the mean-pose baseline on the shifted-domain test split (both protocols);
  6. export as a SavedModel — reused when a version was exported from that checkpoint — and the same evaluation
     through it;
  7. prediction on one shifted-domain test video (people.json, person_0/predictions.npz/json, overlay.mp4);
  8. a picture of one training example through the pipeline (`show_example`), and <run>/summary.md with the tables,
     the preprocessing contract the model was trained with, and the pictures.

The demo passes when the trained model beats the mean-pose baseline (PA-MPJPE, paper protocol) and the SavedModel
gives the checkpoint's numbers.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import time
from pathlib import Path

import gin
import numpy as np

from mhr_tf import evaluate, export, gin_config, paths, predict
from mhr_tf.data import background_windows, preprocessing, threedpw, videos
from mhr_tf.data.preprocessing import Preprocessing
from mhr_tf.experiments import show_example
from mhr_tf.sim import make
from mhr_tf.training import inputs, loop, run_dir

DEMO_GIN = "gin/demo.gin"
SEED = 0


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """One simulated set of the demo: `make.write_set(kind, root, num_sequences, num_frames, SEED)`."""
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
EXAMPLE_TRIES = 10  # the example picture takes the first of examples 0, 1, ... that the pipeline keeps
STAMP = "demo_stage.json"  # what a finished stage was made from, in its folder


class Stages:
    """Wall time and a note per stage, for the summary."""

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


def _finished(directory: Path, key: dict) -> bool:
    """Whether `directory` holds a stage's result made from `key` (its stamp, written when the stage finished)."""
    try:
        return json.loads((directory / STAMP).read_text()) == json.loads(json.dumps(key))
    except (OSError, ValueError):
        return False


def _stamp(directory: Path, key: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    run_dir.write_atomically(directory / STAMP, json.dumps(key, indent=1) + "\n")


# ---- stages 1-3: body model, data, background windows ---------------------------------------------------------------

def body_model_stage(run: Path) -> Path:
    from mhr_tf.body import smpl
    from mhr_tf.sim import preview
    for gender in ("neutral", "female", "male"):  # built into the cache on first use
        print(f"   open body model ({gender}): {smpl.load_body_model(None, gender).source}")
    png = run / "body_model.png"
    if not png.exists():
        preview.body_sheet(png)
    return png


def record_matches(record: dict | None, spec: DataSpec) -> bool:
    """Whether a set record describes the set `spec` asks for (every split; the shifted domain for "threedpw")."""
    if not record or record.get("split") is not None:
        return False
    same = all(record.get(k) == v for k, v in (("kind", spec.kind), ("seed", SEED),
                                               ("num_sequences", spec.num_sequences), ("num_frames", spec.num_frames)))
    return same and (spec.kind != "threedpw" or make.domain_from_record(record) == make.SHIFTED)


def data_stage(stages: Stages, run: Path, spec: DataSpec, workers: int) -> Path:
    """The set under $MHR_TF_HOME/sim/<kind>, reused when its record says it is the one we want; a cached set of
    another size or domain, or an unfinished one, is replaced (that folder is the simulator's cache)."""
    root = inputs.simulator_root(spec.kind)
    if record_matches(make.read_set_record(root), spec):
        stages.note(spec.kind, f"reused {root}")
    else:
        if root.exists():
            print(f"   {root}: no complete set of this size; writing it again")
            shutil.rmtree(root)
        make.write_set(spec.kind, root, spec.num_sequences, spec.num_frames, SEED, workers=workers)
        stages.note(spec.kind, f"{spec.num_sequences} × {spec.num_frames} frames written to {root}")
    return make.preview(spec.kind, root, run / f"preview_{spec.kind}.png")


def background_stage(stages: Stages, root: Path, num_frames: int, method: str, workers: int) -> None:
    """Each video's median flow (App. A) and its stored windows with SLIC labels for `num_frames`-frame clips, cached
    beside it by `background_windows.preprocess_folder` in `workers` processes; valid caches are kept."""
    entries = videos.list_videos(root)
    cached = sum(background_windows.cache_path(e.path, num_frames).exists() for e in entries)
    failed = background_windows.preprocess_folder(root, num_frames, workers, flow_method=method,
                                                  flow_scale=FLOW_SCALE)
    if failed:
        raise RuntimeError(f"{root}: background windows failed for {len(failed)} simulated videos, e.g. "
                           f"{failed[0][0]}: {failed[0][1]}")
    stages.note("background windows", f"{len(entries) - cached} of {len(entries)} videos computed ({method!r} "
                                      f"camera motion at scale {FLOW_SCALE}, SLIC windows for {num_frames}-frame "
                                      f"clips), {cached} cached")


# ---- stages 4-7: training, evaluation, export, prediction -----------------------------------------------------------

def configure(gin_params=()) -> tuple[Preprocessing, int]:
    """Parses gin/demo.gin and `gin_params` into gin's config; returns the demo's contract and step count."""
    gin.clear_config()
    gin_config.parse([DEMO_GIN], gin_params)
    return Preprocessing(), int(gin.query_parameter("train.num_steps"))


def _checkpoint_step(model_dir: Path) -> int:
    """The step of the newest checkpoint (its `ckpt-<step>` name, as training numbers them), 0 without one."""
    import tensorflow as tf
    latest = tf.train.latest_checkpoint(str(model_dir / run_dir.CHECKPOINT_DIR))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def checkpoint_key(model_dir: Path) -> dict:
    """What identifies the newest checkpoint: its prefix and when it was written (a retrained run reuses names)."""
    prefix = run_dir.latest_checkpoint(model_dir)
    return {"checkpoint": prefix, "written_ns": Path(prefix + ".index").stat().st_mtime_ns}


def saved_model_key(version: Path) -> dict:
    return {"saved_model": str(version), "written_ns": (version / "saved_model.pb").stat().st_mtime_ns}


def check_run_settings(model_dir: Path, pre: Preprocessing) -> None:
    """Refuses, before any stage runs, a run folder whose model was trained with another contract or network."""
    if not (model_dir / preprocessing.FILE_NAME).exists():
        return
    (old_pre, old_model), new_model = run_dir.read_run(model_dir), loop.ModelConfig()
    changed = [f"preprocessing.{k}" for k, v in pre.to_json().items() if old_pre.to_json().get(k) != v]
    changed += [f"model.{k}" for k, v in new_model.to_json().items() if old_model.to_json().get(k) != v]
    if changed:
        raise run_dir.RunDirError(f"{model_dir}: trained with other settings than {DEMO_GIN} and --gin_param give "
                                  f"({', '.join(changed)}); give another --out")


def train_stage(stages: Stages, model_dir: Path, roots: dict, pre: Preprocessing, num_steps: int) -> int:
    """Training under the parsed gin config, resuming; a run that reached `num_steps` with this contract and network
    is reused."""
    done = _checkpoint_step(model_dir)
    if done >= num_steps:
        stages.note("training", f"reused the checkpoint at step {done} in {model_dir}")
        return done
    last = gin_config.call(functools.partial(loop.train, model_dir), "train", surreal_root=roots["surreal"],
                           background_root=roots["backgrounds"], threedpw_root=roots["threedpw"])
    stages.note("training", f"{num_steps} steps (from step {done}); last loss {last.get('total', float('nan')):.3f}, "
                            f"val PA-MPJPE {last.get('val_pa_mpjpe_mm', float('nan')):.0f} mm; TensorBoard: "
                            f"tensorboard --logdir {model_dir}")
    return num_steps


def _result_from_json(content: dict) -> evaluate.EvaluationResult:
    """An `EvaluationResult` back from its `to_json` (without the per-frame curves)."""
    meta = dict(content)
    name, summary, tracks = meta.pop("predictor"), meta.pop("protocols"), meta.pop("per_track")
    return evaluate.EvaluationResult(name=name, summary=summary, tracks=tracks, meta=meta)


def _reused_report(stages: Stages, stage: str, out: Path, key: dict):
    """The results and plots of a finished evaluation in `out` made from `key`, else None."""
    if not _finished(out, key):
        return None
    results = [_result_from_json(r) for r in json.loads((out / "results.json").read_text())]
    stages.note(stage, f"reused {out / 'results.md'}")
    print(evaluate.markdown_table(results))
    return results, sorted((out / "plots").glob("*.png"))


def evaluation_stage(stages: Stages, out: Path, model_dir: Path, threedpw_root: Path):
    """The checkpoint and the mean-pose baseline on the test split: results, and one plot per person-sequence."""
    key = {**checkpoint_key(model_dir), "data": make.read_set_record(threedpw_root)}
    reused = _reused_report(stages, "evaluation", out, key)
    if reused:
        return reused
    results, written = evaluate.run(out, threedpw_root, evaluate.SPLIT, model_dir=model_dir, baseline=True,
                                    compare=True, progress=True)
    _stamp(out, key)
    print(evaluate.markdown_table(results))
    return results, written["plots"]


def export_stage(stages: Stages, model_dir: Path, export_dir: Path) -> Path:
    """The SavedModel of the newest checkpoint: an existing version exported from it (after it was written) is
    reused."""
    checkpoint = checkpoint_key(model_dir)
    if export_dir.is_dir():
        for version in sorted((p for p in export_dir.iterdir() if p.name.isdigit()), key=lambda p: -int(p.name)):
            try:
                metadata = export.load_metadata(version)
            except (ValueError, OSError):  # not one of ours, or unfinished: export anew
                continue
            if (metadata.source == checkpoint["checkpoint"]
                    and saved_model_key(version)["written_ns"] >= checkpoint["written_ns"]):
                stages.note("export", f"reused {version} (step {metadata.step})")
                return version
    path = export.export_checkpoint(model_dir, export_dir)
    stages.note("export", f"exported {Path(checkpoint['checkpoint']).name} to {path}")
    return path


def saved_model_stage(stages: Stages, out: Path, saved_model: Path, threedpw_root: Path):
    """The same evaluation through the SavedModel (no baseline, no plots)."""
    key = {**saved_model_key(saved_model), "data": make.read_set_record(threedpw_root)}
    reused = _reused_report(stages, "SavedModel evaluation", out, key)
    if reused:
        return reused[0][0]
    results, _ = evaluate.run(out, threedpw_root, evaluate.SPLIT, saved_model=saved_model, plots=False,
                              progress=True)
    _stamp(out, key)
    print(evaluate.markdown_table(results))
    return results[0]


def prediction_stage(stages: Stages, out: Path, saved_model: Path, threedpw_root: Path) -> dict[str, Path]:
    """Person 0 of the first test sequence through the SavedModel: people.json, person_0/predictions.npz/json and
    overlay.mp4."""
    sequence = sorted((threedpw_root / threedpw.SEQUENCE_DIR / evaluate.SPLIT).glob("*.pkl"))[0]
    key = {**saved_model_key(saved_model), "sequence": str(sequence), "person": 0,
           "data": make.read_set_record(threedpw_root)}
    files = {"npz": out / "person_0" / "predictions.npz", "json": out / "people.json", "overlay": out / "overlay.mp4"}
    if _finished(out, key) and all(p.exists() for p in files.values()):
        stages.note("prediction", f"reused {out}")
        return files
    predictor = evaluate.load_predictor(saved_model=saved_model)
    written = predict.predict_video(predictor, out, threedpw_sequence=sequence, person=0, progress=True)
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise RuntimeError(f"predict wrote {sorted(written)} but not {missing}")
    _stamp(out, key)
    stages.note("prediction", f"{sequence.stem}, person 0 -> {files['overlay']}")
    return files


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


def example_stage(stages: Stages, out: Path, pre: Preprocessing, roots: dict) -> Path:
    """The first training example the pipeline keeps, drawn with the contract the model was trained with."""
    key = {"preprocessing": pre.to_json(), "seed": SEED, "tries": EXAMPLE_TRIES,
           "data": {k: make.read_set_record(roots[k]) for k in ("surreal", "backgrounds")}}
    done = sorted(out.glob("example_*.png"))
    if _finished(out, key) and done:
        stages.note("example picture", f"reused {done[0]}")
        return done[0]
    for index in range(EXAMPLE_TRIES):
        try:
            example = show_example.make_example(pre, roots["surreal"], roots["backgrounds"], index, SEED)
            break
        except show_example.RejectedExampleError as error:
            print(f"   {error}")
    else:
        raise RuntimeError(f"the pipeline rejects the first {EXAMPLE_TRIES} training examples of seed {SEED}")
    png = show_example.write_sheet(example, out / f"example_{index}.png")
    mp4 = show_example.write_movie(example, out / f"example_{index}.mp4")
    _stamp(out, key)
    stages.note("example picture", f"example {index}: {png.name}, {mp4.name}")
    return png


# ---- summary --------------------------------------------------------------------------------------------------------

def saved_model_difference(model: evaluate.EvaluationResult, saved: evaluate.EvaluationResult) -> float:
    """The largest difference (mm) between two results over every protocol and metric both report."""
    gaps = [abs(model.summary[p.name][f"{m}_mm"] - saved.summary[p.name][f"{m}_mm"])
            for p in evaluate.PROTOCOLS for m in evaluate.METRICS]
    gaps = [g for g in gaps if np.isfinite(g)]
    return max(gaps) if gaps else 0.0


def _rel(path: Path, run: Path) -> str:
    return os.path.relpath(path, run)


def _load_average() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def write_summary(run: Path, stages: Stages, results, saved_result, pre: Preprocessing, saved_pre: Preprocessing,
                  pictures: dict, written: dict, verdicts: list[str], flow_method: str) -> Path:
    model, baseline = results
    diff = saved_model_difference(model, saved_result)
    model_dir, saved_model = pictures["model_dir"], pictures["saved_model"]
    text = [
        "# mhr_tf demo", "",
        "Everything here comes from the built-in simulator (open body model, simulated SURREAL-format clips, "
        "simulated background videos, and a simulated *shifted-domain* set in 3DPW's file format). None of it is "
        "SURREAL, Kinetics or 3DPW, and the numbers below are not comparable with the paper's real-3DPW numbers.", "",
        *[f"**{v}**\n" for v in verdicts],
        "## Evaluation on the shifted-domain test split", "",
        evaluate.markdown_table([model, baseline]), "",
        f"The SavedModel gives the same numbers (largest difference {diff:.3f} mm):", "",
        evaluate.markdown_table([saved_result]), "",
        "Protocols: " + "; ".join(f"**{p.title}**: {len(p.joint_names)} joints, centred on {'+'.join(p.root)}, "
                                  f"frames with {p.frames}" for p in evaluate.PROTOCOLS) + ".", "",
        "## The preprocessing contract the model was trained with", "",
        f"From `{_rel(model_dir / 'preprocessing.json', run)}`; the SavedModel carries "
        + ("the same contract" if saved_pre == pre else "**a different contract**")
        + f" in `{_rel(saved_model / export.METADATA_DIR / 'preprocessing.json', run)}`.", "",
        pre.describe(), "",
        "## Pictures", "",
        f"The body model in several shapes and poses:\n\n![body model]({_rel(pictures['body'], run)})", ""]
    for kind, png in pictures["data"].items():
        text += [f"Simulated {kind} set, as the decoders read it back:\n\n![{kind}]({_rel(png, run)})", ""]
    text += [f"One training example through every step of the pipeline, with the contract above "
             f"({pre.num_frames} frames, {pre.crop_size}-px crops):\n\n![example]({_rel(pictures['example'], run)})",
             "", "Per-frame errors (paper protocol) of the model and the baseline:", ""]
    text += [f"![{p.stem}]({_rel(p, run)})" for p in pictures["plots"]] + [""]
    text += [f"A frame of the prediction overlay ({_rel(written['overlay'], run)}):\n\n"
             f"![overlay]({_rel(pictures['overlay'], run)})", "",
             "## Files", "",
             f"- model, its contract and TensorBoard logs: `{_rel(model_dir, run)}` "
             f"(`tensorboard --logdir {model_dir}`)",
             f"- SavedModel: `{_rel(saved_model, run)}`",
             "- evaluation reports: `eval/results.md`, `eval/results.json`, `eval_saved_model/`",
             "- prediction: " + ", ".join(f"`{_rel(p, run)}`" for p in written.values()), "",
             "## Time", "", stages.table(), "",
             f"Camera motion of the backgrounds computed with {flow_method!r}"
             + (" instead of the paper's TV-L1, to fit the 15-minute budget." if flow_method != "tvl1" else "."),
             f"Load average at the end (1/5/15 min): {_load_average()} on {os.cpu_count()} cores.", ""]
    path = run / "summary.md"
    path.write_text("\n".join(text))
    return path


# ---- the demo -------------------------------------------------------------------------------------------------------

def run(out=None, gin_params=(), workers: int = 1, flow_method: str = DEMO_FLOW_METHOD) -> bool:
    """Every stage into the run folder `out` (default $MHR_TF_HOME/demo/run); returns whether the demo passed (the
    model beats the mean-pose baseline, and the SavedModel gives the checkpoint's numbers)."""
    run_folder = (Path(out) if out else paths.home() / "demo" / "run").resolve()
    run_folder.mkdir(parents=True, exist_ok=True)
    print(f"run folder: {run_folder}")
    stages = Stages()
    pre, num_steps = configure(gin_params)
    model_dir = run_folder / "model"
    check_run_settings(model_dir, pre)

    body_png = stages.run("body model", body_model_stage, run_folder)
    previews = {spec.kind: stages.run(spec.kind, data_stage, stages, run_folder, spec, workers) for spec in DEMO_DATA}
    roots = {spec.kind: inputs.simulator_root(spec.kind) for spec in DEMO_DATA}
    stages.run("background windows", background_stage, stages, roots["backgrounds"], pre.num_frames, flow_method,
               workers)

    stages.run("training", train_stage, stages, model_dir, roots, pre, num_steps)
    trained_pre, _ = run_dir.read_run(model_dir)
    results, plots = stages.run("evaluation", evaluation_stage, stages, run_folder / "eval", model_dir,
                                roots["threedpw"])
    saved_model = stages.run("export", export_stage, stages, model_dir, run_folder / "saved_model")
    saved_result = stages.run("SavedModel evaluation", saved_model_stage, stages, run_folder / "eval_saved_model",
                              saved_model, roots["threedpw"])
    written = stages.run("prediction", prediction_stage, stages, run_folder / "predict", saved_model,
                         roots["threedpw"])
    overlay_png = overlay_still(written["overlay"], run_folder / "overlay_frame.png")
    example_png = stages.run("example picture", example_stage, stages, run_folder / "example", trained_pre, roots)

    model_result, baseline_result = results
    ours = model_result.summary[evaluate.PAPER.name]["pa_mpjpe_mm"]
    base = baseline_result.summary[evaluate.PAPER.name]["pa_mpjpe_mm"]
    diff = saved_model_difference(model_result, saved_result)
    beats, agrees = bool(ours < base), diff <= SAVED_MODEL_TOLERANCE_MM
    verdicts = [f"The trained model ({ours:.1f} mm) {'beats' if beats else 'does NOT beat'} the mean-pose baseline "
                f"({base:.1f} mm) in PA-MPJPE, paper protocol, on the shifted-domain test split.",
                f"The SavedModel's numbers {'agree with' if agrees else 'DIFFER from'} the checkpoint's (largest "
                f"difference {diff:.3f} mm, tolerance {SAVED_MODEL_TOLERANCE_MM} mm)."]
    pictures = {"body": body_png, "data": previews, "example": example_png, "overlay": overlay_png, "plots": plots,
                "model_dir": model_dir, "saved_model": saved_model}
    summary = write_summary(run_folder, stages, results, saved_result, trained_pre,
                            export.load_metadata(saved_model).pre, pictures, written, verdicts, flow_method)
    print("\n" + "\n".join(verdicts))
    print(f"demo finished in {time.time() - stages.began:.0f} s (load average {_load_average()}); "
          f"summary: {summary}\nrun folder: {run_folder}")
    passed = beats and agrees
    if not passed:
        print("FAILED: " + " ".join(v for v, ok in zip(verdicts, (beats, agrees)) if not ok))
    return passed
