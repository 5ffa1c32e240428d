"""The sim2real lab: the paper's Table 1 on the built-in simulator, with an in-domain and a shifted test set, seeds,
σ, and only the claims the numbers can carry.

    simulate (SURREAL-format training clips, moving backgrounds, two 3DPW-format test sets of the same people and
    motions — rendered like the training data, and shifted by `mhr_tf.sim.domain.SHIFTED` — and a shifted set
    for DANN's unlabelled target domain)
    ─► background windows ─► caches: training examples once with every channel group, test windows of both sets,
       DANN's target windows (`mhr_tf.data.example_cache`)
    ─► for every Table 1 row x seed: `gin/<row>.gin` at lab size, trained from the cache (the row reads its channels),
       evaluated on both test sets (paper protocol), rgb and flow+keypoints also at every checkpoint (the curve)
    ─► lab.md (table: in-domain, shifted, gap, mean ± σ over seeds; which orderings the σ resolves), lab.json,
       lab.png (bars with error bars), lab_curve.png (shifted error against steps)

Every row x seed is a job of its own, resumable (a finished job's result.json is kept; an interrupted one resumes
from its checkpoint); jobs run in `workers` processes of one TensorFlow thread each. Results are simulator results:
they say what this simulator's domain shift does to each input, not what real data does.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import json
import multiprocessing
import os
import shutil
import time
from pathlib import Path


from mhr_tf import paper, paths

ROWS = tuple(row for row in paper.TABLE_1 if row.run in ("rgb", "rgb_dann", "flow", "rgb_kp", "kp", "full"))
REPO_GIN = Path(__file__).resolve().parents[2] / "gin"
CURVE_ROWS = ("rgb", "full")
SPLITS = ("in_domain", "shifted")
RESULT_FILE = "result.json"
RESULT_VERSION = 1
FPS = 30.0


@dataclasses.dataclass(frozen=True)
class LabSize:
    """Everything that sets the lab's scale. Chosen so `lab` fits about 2 hours on 2 cores (see the README)."""
    surreal_sequences: int
    surreal_frames: int
    backgrounds: int
    background_frames: int
    test_sequences: int        # each test set (in-domain, shifted): the same people and motions
    test_frames: int
    target_sequences: int      # DANN's unlabelled target domain (shifted), not the test people
    num_frames: int            # T
    crop_size: int
    examples: int              # cached training examples
    val_examples: int
    target_windows: int
    steps: int
    batch_size: int
    seeds: tuple[int, ...]
    units: int                 # LSTM, heads and regressor
    learning_rate: float
    curve_every: int           # checkpoint (and curve point) every this many steps
    slic_downsample: int = 2
    data_seed: int = 0


SIZES = {
    "lab": LabSize(surreal_sequences=400, surreal_frames=40, backgrounds=60, background_frames=64,
                   test_sequences=40, test_frames=40, target_sequences=20, num_frames=8, crop_size=64,
                   examples=6000, val_examples=200, target_windows=2000, steps=1200, batch_size=8, seeds=(0, 1, 2),
                   units=64, learning_rate=5e-4, curve_every=200),
    "tiny": LabSize(surreal_sequences=6, surreal_frames=12, backgrounds=3, background_frames=16, test_sequences=2,
                    test_frames=12, target_sequences=2, num_frames=5, crop_size=32, examples=24, val_examples=4,
                    target_windows=8, steps=4, batch_size=2, seeds=(0, 1), units=8, learning_rate=5e-4,
                    curve_every=2),
}


def default_out(size: str) -> Path:
    return paths.home() / "lab" / size


# --------------------------------------------------------------------------------------------------------------------
# Data: simulated once, then cached once

def data_roots(out: Path) -> dict[str, Path]:
    data = out / "data"
    return {"surreal": data / "surreal", "backgrounds": data / "backgrounds", "in_domain": data / "threedpw_in_domain",
            "shifted": data / "threedpw_shifted", "target": data / "threedpw_target", "cache": data / "cache"}


def simulate(out: Path, size: LabSize, workers: int) -> dict[str, Path]:
    """The simulator's sets, each reused when its record says it is the one asked for."""
    from mhr_tf.sim import domain, make
    roots = data_roots(out)
    seed = size.data_seed
    jobs = [("surreal", roots["surreal"], size.surreal_sequences, size.surreal_frames, seed, "train", None),
            ("backgrounds", roots["backgrounds"], size.backgrounds, size.background_frames, seed, None, None),
            # The same seed: the in-domain and shifted test sets show the same people doing the same motions.
            ("threedpw", roots["in_domain"], size.test_sequences, size.test_frames, seed + 1, "test",
             domain.IN_DOMAIN),
            ("threedpw", roots["shifted"], size.test_sequences, size.test_frames, seed + 1, "test", domain.SHIFTED),
            ("threedpw", roots["target"], size.target_sequences, size.test_frames, seed + 2, "train", domain.SHIFTED)]
    for kind, root, count, frames, set_seed, split, dom in jobs:
        record = make.read_set_record(root)
        wanted = {"num_sequences": count, "num_frames": frames, "seed": set_seed, "split": split}
        if record and all(record.get(k) == v for k, v in wanted.items()):
            continue
        if root.exists():
            shutil.rmtree(root)
        print(f"simulating {kind} -> {root}", flush=True)
        make.write_set(kind, root, count, frames, set_seed, workers=workers, split=split,
                       **({"domain": dom} if dom is not None else {}))
    return roots


def contract(size: LabSize):
    """The lab's preprocessing contract with every channel group (each row then reads its own)."""
    import gin
    from mhr_tf import gin_config
    from mhr_tf.data import example_cache
    from mhr_tf.data.preprocessing import Preprocessing
    gin.clear_config()
    gin_config.parse(["gin/full.gin"], size_bindings(size))
    pre = example_cache.full_contract(Preprocessing())
    gin.clear_config()
    return pre


def build_caches(roots: dict[str, Path], size: LabSize, workers: int) -> Path:
    """Background windows, then the caches (training and validation examples, both test sets' windows, DANN's
    target windows), each skipped when present."""
    from mhr_tf.data import background_windows, example_cache, pipeline, sources, threedpw
    from mhr_tf.evaluate import window_stride
    pre = contract(size)
    cache = roots["cache"]
    index_path = cache / example_cache.INDEX_FILE
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    failures = background_windows.preprocess_folder(roots["backgrounds"], size.num_frames, workers,
                                                    slic_downsample=size.slic_downsample, flow_method="dis",
                                                    flow_scale=1.0)
    if failures:
        raise RuntimeError(f"background windows failed for {failures[:3]}")
    if index.get("train_examples") != size.examples:
        source = sources.FileSource(roots["surreal"], roots["backgrounds"], size.num_frames)
        ds = pipeline.make_dataset(source, pre, 1, seed=size.data_seed).unbatch()
        example_cache.write_training_cache(cache, ds, pre, size.examples)
    if index.get("val_examples") != size.val_examples:
        source = sources.FileSource(roots["surreal"], roots["backgrounds"], size.num_frames)
        ds = pipeline.make_dataset(source, pre, 1, seed=size.data_seed + 999_983).unbatch()
        example_cache.write_training_cache(cache, ds, pre, size.val_examples, prefix="val")
    stride = window_stride(size.num_frames)
    for split in SPLITS:
        if f"{split}_examples" not in index:
            tracks = threedpw.load_split(roots[split], "test")
            ds = pipeline.make_target_dataset(tracks, pre, 1, stride).unbatch()
            example_cache.write_window_cache(cache, split, ds, pre)
    if index.get("target_examples") != size.target_windows:
        tracks = threedpw.load_split(roots["target"], "train")
        ds = pipeline.make_domain_dataset(tracks, pre, 1, seed=size.data_seed).unbatch()
        example_cache.write_window_cache(cache, "target", ds.take(size.target_windows), pre,
                                         total=size.target_windows)
    return cache


# --------------------------------------------------------------------------------------------------------------------
# One row x seed

def size_bindings(size: LabSize) -> list[str]:
    """The lab's scale over any row file: what gin/demo.gin does for the demo, at the lab's size."""
    return [f"Preprocessing.num_frames = {size.num_frames}", f"Preprocessing.crop_size = {size.crop_size}",
            "FlowSettings.backend = 'dis'", "ModelConfig.architecture = 'resnet_tiny'",
            f"ModelConfig.lstm_units = {size.units}", f"ModelConfig.head_units = {size.units}",
            f"ModelConfig.regressor_units = {size.units}", f"ModelConfig.adversary_units = {size.units}",
            f"train.batch_size = {size.batch_size}", f"train.num_steps = {size.steps}",
            f"train.checkpoint_every = {size.curve_every}", f"train.keep_checkpoints = {size.steps // size.curve_every + 1}",
            "train.summary_every = 50", "train.image_summary_every = 0", "train.validate_every = 0",
            "train.progress = False", f"learning_rate_schedule.base = {size.learning_rate}",
            f"learning_rate_schedule.decay_steps = {size.steps}"]


def run_dir(out: Path, run: str, seed: int) -> Path:
    return out / "runs" / run / f"seed{seed}"


def _read_result(path: Path, size: LabSize) -> dict | None:
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same_size = result.get("size") == json.loads(json.dumps(dataclasses.asdict(size)))  # as the JSON holds it
    return result if result.get("version") == RESULT_VERSION and same_size else None


def _worker_job(out: str, size_name: str, run: str, seed: int, dann_weight: float | None = None) -> dict:
    """`run_job` in a worker process of its own, on one TensorFlow thread (the workers share the cores)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return run_job(out, size_name, run, seed, dann_weight)


def run_job(out: str, size_name: str, run: str, seed: int, dann_weight: float | None = None) -> dict:
    """Train one row with one seed from the cache and evaluate it on both test sets (`dann_weight`: the DANN
    sweep's weight, in a run folder of its own)."""
    import gin
    from mhr_tf import gin_config
    from mhr_tf.training import loop
    out, size = Path(out), SIZES[size_name]
    directory = run_dir(out, run if dann_weight is None else f"{run}_w{dann_weight:g}", seed)
    result_path = directory / RESULT_FILE
    if (result := _read_result(result_path, size)) is not None:
        return result
    roots = data_roots(out)
    began = time.time()
    gin.clear_config()
    gin_config.parse([f"gin/{run}.gin"], size_bindings(size) + (
        [] if dann_weight is None else [f"train.dann_weight = {dann_weight}"]))
    gin_config.call(functools.partial(loop.train, directory), "train", source="cache", cache_dir=roots["cache"],
                    seed=seed)
    gin.clear_config()
    trained = time.time() - began
    scores = {split: evaluate_split(directory, roots, split) for split in SPLITS}
    curve = {}
    if run in CURVE_ROWS:
        for checkpoint in _checkpoints(directory):
            step = int(checkpoint.rsplit("-", 1)[1])
            curve[step] = evaluate_split(directory, roots, "shifted", checkpoint)["pa_mpjpe_mm"]
    result = {"version": RESULT_VERSION, "size": dataclasses.asdict(size), "run": run, "seed": seed,
              "dann_weight": dann_weight, "scores": scores, "curve": curve, "train_seconds": trained, "seconds": time.time() - began}
    result_path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def _checkpoints(directory: Path) -> list[str]:
    import tensorflow as tf
    state = tf.train.get_checkpoint_state(str(directory / "checkpoints"))
    return list(state.all_model_checkpoint_paths) if state else []


def evaluate_split(directory: Path, roots: dict[str, Path], split: str, checkpoint: str | None = None) -> dict:
    """The paper protocol's numbers of a run on one cached test set, without and with One-Euro smoothing of the
    joints (smoothing reported apart: the paper's numbers are unsmoothed)."""
    from mhr_tf import evaluate
    from mhr_tf.data import example_cache, threedpw
    predictor = evaluate.checkpoint_predictor(directory, checkpoint)
    tracks = threedpw.load_split(roots[split], "test")
    windows = example_cache.read_window_cache(roots["cache"], split, predictor.pre, batch_size=16)
    predictions = list(evaluate.predict_tracks(predictor, tracks, windows=windows))
    plain = evaluate.score_predictions(tracks, predictions).summary["paper"]
    smoothed = evaluate.score_predictions(tracks, evaluate.smoothed(predictions, FPS)).summary["paper"]
    return {"pa_mpjpe_mm": plain["pa_mpjpe_mm"], "mpjpe_mm": plain["mpjpe_mm"], "accel_mm": plain["accel_mm"],
            "accel_smoothed_mm": smoothed["accel_mm"], "pa_mpjpe_smoothed_mm": smoothed["pa_mpjpe_mm"],
            "frames": plain["frames"], "tracks": plain["tracks"]}


def mean_pose_scores(roots: dict[str, Path], size: LabSize) -> dict:
    """The mean-pose baseline on both test sets: what knowing nothing scores."""
    from mhr_tf import evaluate
    predictor = evaluate.mean_pose_predictor(contract(size))
    return {split: evaluate.evaluate(predictor, roots[split], "test").summary["paper"]["pa_mpjpe_mm"]
            for split in SPLITS}


# --------------------------------------------------------------------------------------------------------------------
# The whole lab

def run_lab(size_name: str = "lab", out=None, workers: int = 2, publish: Path | None = None,
            runs: tuple[str, ...] | None = None, prepare_only: bool = False) -> dict:
    """Simulate, cache, run every row x seed (resumable), and write the report; returns the summary. `runs` limits
    the rows (gin file names); `prepare_only` stops after the caches."""
    size = SIZES[size_name]
    rows = tuple(row for row in ROWS if runs is None or row.run in runs)
    out = Path(out) if out is not None else default_out(size_name)
    out.mkdir(parents=True, exist_ok=True)
    began = time.time()
    roots = simulate(out, size, workers)
    build_caches(roots, size, workers)
    prepared = time.time() - began
    if prepare_only:
        return {"out": str(out), "seconds": {"data_and_caches": prepared}}
    jobs = [(str(out), size_name, row.run, seed) for row in rows for seed in size.seeds]
    results = []

    def done(result):
        results.append(result)
        shifted = result["scores"]["shifted"]["pa_mpjpe_mm"]
        print(f"done {result['run']} seed {result['seed']}: shifted PA-MPJPE {shifted:.1f} mm "
              f"({len(results)}/{len(jobs)}, {time.time() - began:.0f} s)", flush=True)

    failed = []
    if workers <= 1:
        for job in jobs:
            done(run_job(*job))
    else:
        context = multiprocessing.get_context("spawn")  # a fresh TensorFlow per worker
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = {pool.submit(_worker_job, *job): job for job in jobs}
            for future in concurrent.futures.as_completed(futures):
                try:
                    done(future.result())
                except Exception as error:  # one failed job must not lose the others; a rerun retries it
                    failed.append((futures[future][2:], f"{type(error).__name__}: {error}"))
                    print(f"FAILED {futures[future][2:]}: {failed[-1][1]}", flush=True)
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(jobs)} lab jobs failed ({failed[0][0]}: {failed[0][1]}); the "
                           "others are kept: rerun the same command to retry them")
    from mhr_tf.experiments import lab_report
    summary = lab_report.summarize(results, mean_pose_scores(roots, size), size, rows)
    # This invocation's wall time, and the row x seed jobs' own (a resumed run reuses finished jobs).
    summary.update(seconds={"data_and_caches": prepared, "this_invocation": time.time() - began,
                            "jobs_wall_sum": sum(r["seconds"] for r in results),
                            "jobs_training_sum": sum(r["train_seconds"] for r in results)}, out=str(out))
    lab_report.write(summary, out)
    if publish is not None:
        lab_report.write(summary, Path(publish))
    return summary


# App. B: "We performed a hyperparameter sweep with 5 seeds, using a DANN loss weight between 0.2 and 5 ... and report
# the best, with the mean in parentheses."
DANN_WEIGHTS = (0.2, 0.5, 1.0, 2.0, 5.0)
DANN_SEEDS = (0, 1, 2, 3, 4)


def dann_sweep(size_name: str = "lab", out=None, workers: int = 2, weights=DANN_WEIGHTS, seeds=DANN_SEEDS,
               publish: Path | None = None) -> dict:
    """The paper's DANN protocol on the lab's data: RGB + DANN for every weight x seed (resumable); reports the best
    run and the mean over all, on the shifted test set, beside plain RGB when the lab has run it."""
    size = SIZES[size_name]
    out = Path(out) if out is not None else default_out(size_name)
    roots = simulate(out, size, workers)
    build_caches(roots, size, workers)
    jobs = [(str(out), size_name, "rgb_dann", seed, float(weight)) for weight in weights for seed in seeds]
    if workers <= 1:
        results = [run_job(*job) for job in jobs]
    else:
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_worker_job, *zip(*jobs)))
    from mhr_tf.experiments import lab_report
    summary = lab_report.summarize_sweep(results, [_read_result(run_dir(out, "rgb", seed) / RESULT_FILE, size)
                                                   for seed in size.seeds])
    lab_report.write_sweep(summary, out)
    if publish is not None:
        lab_report.write_sweep(summary, Path(publish))
    return summary
