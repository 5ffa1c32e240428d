"""The training pipeline (`mhr_tf.data.pipeline.make_dataset`): CPU seconds per clip, clips/s per core, and each
stage's share, for both sources and the flow backends.

Paper size: 31-frame clips, 224-px crops, flow + keypoint heatmaps (gin/full.gin), every training rule on (camera
tracking, SLIC occluders, total occlusions, keypoint visibility; §3.1, App. A/B). The data are the simulator's
(`sim_data.make_sim_data`), read by
- the file source (`sources.FileSource`: the Python decoders, one `tf.numpy_function` per example), and
- the TFDS source (`sources.TFDSSource`: the `surreal_clips` and `background_clips` records, TF ops only: what a
  tf.data service worker runs),
each with the flow backends "dis" (OpenCV, a Python step) and "tf_tvl1" (TF ops, XLA).

Per (source, backend), in wall time and CPU time (other engineers share the machine, so wall time alone says little;
CPU seconds per clip are what one core pays):
1. the source's stages: the file source's decoders one by one (SURREAL decode, body joints, background window read),
   timed inside the real `FileSource` by wrapping the functions it calls; the TFDS source's record reading and its
   `raw` (decoding the chosen frames);
2. the online steps one by one, each the library's function in a `tf.function` run on the same raw examples:
   `place_person`, `occlude_and_crop` under a contract with no input channels (occluder, composite, total occlusion,
   visibility, boxes), then what `network_inputs` computes: paired crops, flow, heatmaps; and all of them at once
   (`process` + `labels_of`, what `make_dataset` maps);
3. `make_dataset` itself end to end, with 1 and 2 tf.data threads (`private_threadpool_size`).
Stages 1-2 run on the kept examples (those `place_person` accepts; the rejected ones' source cost is counted too, as
`make_dataset` pays it). The background windows' SLIC and camera motion are offline (`background_windows`): their
cost per stored window is reported apart. TF intra-op, OpenCV and BLAS use one thread.
"""
from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from mhr_tf.bench import common, sim_data
from mhr_tf.data import background_windows, camera_motion, crops, flow, keypoints, pipeline, sources, surreal, videos
from mhr_tf.data.preprocessing import Channels, FlowSettings, Preprocessing


@dataclasses.dataclass(frozen=True)
class Size:
    frames: int
    crop: int
    clips: int              # kept clips timed per measurement
    surreal_clips: int      # simulator data written
    background_videos: int
    video_frames: int
    slic_downsample: int    # of the stored background windows (1: the paper's SLIC)


FULL = Size(frames=31, crop=224, clips=12, surreal_clips=6, background_videos=4, video_frames=40, slic_downsample=1)
SMALL = Size(frames=8, crop=64, clips=2, surreal_clips=1, background_videos=1, video_frames=12, slic_downsample=2)
SOURCES = ("files", "tfds")
BACKENDS = ("dis", "tf_tvl1")
FILE_STAGES = ("surreal_decode", "body_joints", "background_decode", "source_other")
TFDS_STAGES = ("records", "decode")
TF_STAGES = ("place_person", "occlude_and_box", "crops", "flow", "heatmaps")
WHOLE = "whole_tf_part"
MAX_DRAWS_PER_CLIP = 4  # examples drawn per kept clip at most, before giving up on too many rejections


def contract(size: Size, backend: str) -> Preprocessing:
    """gin/full.gin's contract at `size` with flow `backend`."""
    return Preprocessing(num_frames=size.frames, crop_size=size.crop, flow=FlowSettings(backend=backend))


def make_source(kind: str, data: sim_data.SimData, num_frames: int):
    if kind == "files":
        return sources.FileSource(data.surreal, data.backgrounds, num_frames)
    return sources.TFDSSource(data.tfds, num_frames, surreal_config=data.surreal_config,
                              background_config=data.background_config)


# ---- 1. the source ------------------------------------------------------------------------------------------------

def _draw_raws(draw, place, clips: int) -> list[tuple]:
    """(raw, key) of the first `clips` examples `place_person` keeps; `draw(i)` reads example i."""
    kept = []
    for i in range(clips * MAX_DRAWS_PER_CLIP):
        raw, key = draw(i)
        if int(place(raw)["status"]) == sources.STATUS_OK:
            kept.append((raw, key))
            if len(kept) == clips:
                return kept
    raise RuntimeError(f"only {len(kept)} of {clips * MAX_DRAWS_PER_CLIP} examples were kept; the simulator data "
                       "is too small for this size")


def time_file_source(source: sources.FileSource, place, clips: int, seed: int) -> tuple[list[dict], list]:
    """The decoders inside `FileSource.raw`, timed by wrapping the functions its `decode` calls."""
    raw_fn = tf.function(source.raw, reduce_retracing=True)
    raw_fn(sources.example_key(seed, 10 ** 6))  # traces, loads the body model, outside the timing
    clock = common.StageClock()
    undo = [clock.wrap(surreal, "load_clip", "surreal_decode"), clock.wrap(sources, "person_labels", "body_joints"),
            clock.wrap(background_windows, "read_window", "background_decode")]

    def draw(i):
        key = sources.example_key(seed, i)
        with clock.stage("source_total"):
            raw = raw_fn(key)
        return raw, key

    try:
        kept = _draw_raws(draw, place, clips)
    finally:
        for restore in undo:
            restore()
    wall, cpu = clock.pop("source_total")
    clock.wall["source_other"] = wall - sum(clock.wall.values())
    clock.cpu["source_other"] = cpu - sum(clock.cpu.values())
    return clock.rows(clips), kept


def time_tfds_source(source: sources.TFDSSource, place, clips: int, seed: int) -> tuple[list[dict], list]:
    """Reading a pair of records (TFDS, shuffled streams) and `TFDSSource.raw` (decoding the chosen frames)."""
    pairs = iter(source.pairs(tf.constant(seed, tf.int64)))
    raw_fn = tf.function(source.raw, reduce_retracing=True)
    raw_fn(sources.example_key(seed, 10 ** 6), next(pairs))  # traces, fills the shuffle buffers
    clock = common.StageClock()

    def draw(i):
        key = sources.example_key(seed, i)
        with clock.stage("records"):
            pair = next(pairs)
        with clock.stage("decode"):
            raw = raw_fn(key, pair)
        return raw, key

    kept = _draw_raws(draw, place, clips)
    return clock.rows(clips), kept


# ---- 2. the online steps ------------------------------------------------------------------------------------------

def stage_functions(pre: Preprocessing) -> dict:
    """Each online step as a `tf.function` of the library's own functions (see the module docstring)."""
    s = pre.crop_size
    no_inputs = dataclasses.replace(pre, channels=Channels(use_rgb=False, use_flow=False, use_keypoints=False))

    def heatmaps(points, centre, size, visible):
        current, _ = crops.keypoints_in_pair_boxes(points, centre, size, s)
        return keypoints.gaussian_heatmaps(current, visible[:-1], s, pre.sigma_px)

    def whole(raw, key):
        ex = pipeline.process(raw, key, pre)
        return ex["inputs"], pipeline.labels_of(ex, pre)

    return {
        "place_person": tf.function(lambda raw: pipeline.place_person(raw, pre), reduce_retracing=True),
        "occlude_and_box": tf.function(lambda ex, key: pipeline.occlude_and_crop(ex, key, no_inputs),
                                       reduce_retracing=True),
        "crops": tf.function(lambda frames, centre, size: crops.paired_crops(frames, centre, size, s)),
        "flow": tf.function(lambda pairs: flow.flow_channels(flow.compute_flow(pairs, pre.flow), pre.flow.divisor)),
        "heatmaps": tf.function(heatmaps),
        WHOLE: tf.function(whole, reduce_retracing=True),
    }


def _fetch(value) -> None:
    for tensor in tf.nest.flatten(value):
        np.asarray(tensor)


def time_tf_stages(kept: list, fns: dict, repeats: int = 1) -> list[dict]:
    """The online steps one at a time on the kept raw examples (a first untimed pass traces every shape)."""
    def run_once(clock: common.StageClock | None):
        timer = clock.stage if clock else (lambda name: contextlib.nullcontext())
        for raw, key in kept:
            with timer("place_person"):
                placed = fns["place_person"](raw)
                _fetch(placed)
            with timer("occlude_and_box"):
                ex = fns["occlude_and_box"](placed, key)
                _fetch(ex["box_size"])
            with timer("crops"):
                pairs = fns["crops"](ex["frames"], ex["box_centre"], ex["box_size"])
                _fetch(pairs)
            with timer("flow"):
                _fetch(fns["flow"](pairs))
            with timer("heatmaps"):
                _fetch(fns["heatmaps"](ex["joints14_2d"][:, :keypoints.NUM_HEATMAPS], ex["box_centre"],
                                       ex["box_size"], ex["keypoints_visible"]))
            with timer(WHOLE):
                _fetch(fns[WHOLE](raw, key))

    run_once(None)
    clock = common.StageClock()
    for _ in range(repeats):
        run_once(clock)
    whole_wall, whole_cpu = clock.pop(WHOLE)
    clips = len(kept) * repeats
    rows = clock.rows(clips)
    rows.append({"stage": WHOLE, "wall_ms_per_clip": round(1e3 * whole_wall / clips, 3),
                 "cpu_ms_per_clip": round(1e3 * whole_cpu / clips, 3), "cpu_share": None})
    return rows


# ---- 3. end to end ------------------------------------------------------------------------------------------------

def time_end_to_end(source, pre: Preprocessing, examples: int, threads: int, seed: int) -> dict:
    """`make_dataset` over `examples` drawn examples with `threads` tf.data threads, after an untimed pass over its
    first batch (XLA compilation, body models, file handles). CPU seconds of the whole process, from the timed
    iterator's creation to its end: every example's work falls inside, and so does the iterator's start (tf.data
    instantiating its functions, a few tenths of a second: most of a smoke run's cost, little of a paper-size one)."""
    ds = pipeline.make_dataset(source, pre, batch_size=1, seed=seed, num_examples=examples)
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
    ds = ds.with_options(options)
    for _ in ds.take(1):
        pass
    wall, cpu, clips, rejected = time.perf_counter(), common.cpu_s(), 0, None
    for _, labels in ds:
        clips += int(labels["index"].shape[0])
        rejected = labels["rejected"][-1].numpy()
    wall, cpu = time.perf_counter() - wall, common.cpu_s() - cpu
    return {"threads": threads, "examples_drawn": examples, "clips": clips,
            "rejected": dict(zip(sources.REASONS, [] if rejected is None else rejected.tolist())),
            "wall_s": wall, "cpu_s": cpu, "cpu_s_per_clip": cpu / clips if clips else None,
            "clips_per_s": clips / wall, "clips_per_s_per_core": clips / wall / threads,
            "clips_per_cpu_s": clips / cpu if cpu > 0 else None}


# ---- offline: the stored background windows ------------------------------------------------------------------------

def time_offline_windows(data: sim_data.SimData, size: Size) -> dict:
    """`background_windows.window_record` (resize, camera shift, SLIC) on every window of the first video: paid
    once per stored window when the caches or the TFDS records are made, never per clip."""
    entry = videos.list_videos(data.backgrounds)[0]
    frames = videos.read_video(entry.path)
    median = camera_motion.load_median_flow(entry.path)
    windows = background_windows.window_starts(len(frames), size.frames)
    clock = common.StageClock()
    with clock.stage("windows"):
        for start, length in windows:
            background_windows.window_record(frames, median, start, length, np.random.default_rng(start),
                                             size.slic_downsample)
    wall, cpu = clock.pop("windows")
    return {"video": str(entry.path.name), "windows": len(windows), "window_frames": windows[0][1],
            "slic_downsample": size.slic_downsample, "cpu_s_per_window": cpu / len(windows),
            "wall_s_per_window": wall / len(windows)}


# ---- the run ------------------------------------------------------------------------------------------------------

def measure(kind: str, backend: str, data: sim_data.SimData, size: Size, clips: int, threads: tuple[int, ...],
            seed: int) -> dict:
    """Every measurement of one (source, flow backend)."""
    pre = contract(size, backend)
    source = make_source(kind, data, size.frames)
    fns = stage_functions(pre)
    timer = time_file_source if kind == "files" else time_tfds_source
    source_rows, kept = timer(source, fns["place_person"], clips, seed)
    tf_rows = time_tf_stages(kept, fns)
    end_to_end = [time_end_to_end(make_source(kind, data, size.frames), pre, clips, n, seed) for n in threads]
    source_cpu = sum(r["cpu_ms_per_clip"] for r in source_rows)
    whole_cpu = next(r["cpu_ms_per_clip"] for r in tf_rows if r["stage"] == WHOLE)
    finished = [r for r in end_to_end if r["clips"]]
    return {
        "source": kind, "backend": backend, "python_free": not source.python and not pre.flow.python,
        "source_stages": source_rows, "tf_stages": tf_rows, "end_to_end": end_to_end,
        "summary": {
            "cpu_ms_per_clip_stages": source_cpu + whole_cpu,
            "clips_per_cpu_s_from_stages": 1e3 / (source_cpu + whole_cpu),
            "clips_per_cpu_s_end_to_end": max((r["clips_per_cpu_s"] or 0.0 for r in finished), default=None),
            "cpu_s_per_clip_end_to_end": min((r["cpu_s_per_clip"] for r in finished), default=None),
            "clips_per_s_per_core_wall": max((r["clips_per_s_per_core"] for r in finished), default=None),
        },
    }


def run(out=None, small: bool = False, clips: int | None = None, source_kinds: tuple[str, ...] = SOURCES,
        backends: tuple[str, ...] = BACKENDS, threads: tuple[int, ...] = (1, 2), data=None, seed: int = 1) -> dict:
    """Every measurement for every (source, backend); prints tables and writes the report to `out` (JSON) when
    given. `data`: a folder for the simulator data (made if absent, reused otherwise; default a temporary one)."""
    size = SMALL if small else FULL
    clips = clips or size.clips
    unknown = [s for s in source_kinds if s not in SOURCES] + [b for b in backends if b not in BACKENDS]
    if unknown:
        raise ValueError(f"pipeline benchmark: unknown {unknown}; sources from {SOURCES}, backends from {BACKENDS}")
    cv2.setNumThreads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    with tempfile.TemporaryDirectory(prefix="mhr_tf_bench_pipeline_") as scratch:
        data_root = Path(data) if data is not None else Path(scratch)
        made = sim_data.make_sim_data(data_root, size.frames, size.surreal_clips, size.background_videos,
                                      size.video_frames, size.slic_downsample, tfds="tfds" in source_kinds)
        load_before = common.machine()["load_average"]
        report = {
            "benchmark": "training pipeline (mhr_tf.bench.pipeline)",
            "mode": "small" if small else "full", "size": dataclasses.asdict(size) | {"clips": clips},
            "preprocessing": contract(size, backends[0]).to_json(), "backends": list(backends),
            "offline_background_windows": time_offline_windows(made, size), "runs": {},
        }
        for kind in source_kinds:
            for backend in backends:
                name = f"{kind}/{backend}"
                result = measure(kind, backend, made, size, clips, tuple(threads), seed)
                report["runs"][name] = result
                print(common.table(f"{name}: source stages, per clip", result["source_stages"]))
                print(common.table(f"{name}: online steps, per clip", result["tf_stages"]))
                print(common.table(f"{name}: make_dataset end to end", [
                    {k: r[k] for k in ("threads", "clips", "cpu_s", "wall_s", "clips_per_cpu_s",
                                       "clips_per_s_per_core")} for r in result["end_to_end"]]), flush=True)
    report["machine"] = common.machine(load_average_before=load_before)
    print(common.table("summary", [{"run": name, **r["summary"]} for name, r in report["runs"].items()]))
    if out is not None:
        print(f"wrote {common.write_json(out, report)}")
    return report
