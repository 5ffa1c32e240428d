"""The training pipeline (`mhr_tf.data.pipeline.make_dataset`): CPU seconds per clip, clips/s per core, and each
stage's share, for both sources, the flow backends and both flow placements.

Paper size: 31-frame clips, 224-px crops, flow + keypoint heatmaps (gin/full.gin), every training rule on (camera
tracking, SLIC occluders, total occlusions, keypoint visibility; §3.1, App. A/B). The data are the simulator's
(`sim_data.make_sim_data`), read by
- the file source (`sources.FileSource`: the Python decoders, one `tf.numpy_function` per example), and
- the TFDS source (`sources.TFDSSource`: the `surreal_clips` and `background_clips` records, TF ops only: what a
  tf.data service worker runs),
each with the flow backends "dis" (OpenCV, a Python step) and "tf_tvl1" (TF ops, XLA) computed in the pipeline, and
"tf_tvl1" placed in the model (`FlowSettings.placement` "model": the pipeline sends the pair crops, the network's
first layer computes the flow on the accelerator; `mhr_tf.model.flow_input`).

Per run (source, backend, placement), in wall time and CPU time (other engineers share the machine, so wall time
alone says little; CPU seconds per clip are what one core pays):
1. the source's stages: the file source's decoders one by one (SURREAL decode, body joints, background window read),
   timed inside the real `FileSource` by wrapping the functions it calls; the TFDS source's record reading and its
   `raw` (decoding the chosen frames);
2. the online steps one by one, each the library's function in a `tf.function` run on the same raw examples, in
   `pipeline.process`'s order: `place_person`; the SLIC occluder, the composite, the total occlusion, the keypoint
   visibility and the boxes (`occlude_and_crop`'s steps); then what `network_inputs` computes: the paired crops,
   the flow (flow in the pipeline only), the heatmaps' 1-D profiles, and `write_inputs` (scaling, zeroing, heatmaps
   and the channel interleave in one XLA fusion); the labels (`labels_of`); and all of them in one graph
   (`process` + `labels_of`, what `make_dataset` maps);
3. `make_dataset` itself end to end, with 1 and 2 tf.data threads (`private_threadpool_size`).
Stages 1-2 run on the kept examples (those `place_person` accepts; the rejected ones' source cost is counted too, as
`make_dataset` pays it). The background windows' SLIC and camera motion are offline (`background_windows`): their
cost per stored window is reported apart. TF intra-op, OpenCV and BLAS use one thread.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from mhr_tf.bench import common, sim_data
from mhr_tf.data import (background_windows, camera_motion, crops, flow, keypoints, occlusion, pipeline, sources,
                         surreal, videos)
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
    warmup: int             # clips make_dataset delivers before its steady state is timed


FULL = Size(frames=31, crop=224, clips=12, surreal_clips=6, background_videos=4, video_frames=40, slic_downsample=1,
            warmup=3)
SMALL = Size(frames=8, crop=64, clips=2, surreal_clips=1, background_videos=1, video_frames=12, slic_downsample=2,
             warmup=1)
SOURCES = ("files", "tfds")
BACKENDS = ("dis", "tf_tvl1")
PLACEMENTS = ("pipeline", "model")
FILE_STAGES = ("surreal_decode", "body_joints", "background_decode", "source_other")
TFDS_STAGES = ("records", "decode")
TF_STAGES = ("place_person", "occluder", "composite", "total_occlusion", "visibility", "boxes", "crops", "flow",
             "heatmap_profiles", "write_inputs", "labels")
WHOLE = "whole_tf_part"
MAX_DRAWS_PER_CLIP = 4  # examples drawn per kept clip at most, before giving up on too many rejections
# The goals of the TF-only path (the TFDS source), clips per CPU second of one core at paper size: with the flow on
# the accelerator (one current GPU trains ~74 clips/s at batch 3: ~15 cores per GPU), and with TF TV-L1 still here.
GOALS = {"tfds/tf_tvl1/model": 5.0, "tfds/tf_tvl1/pipeline": 1.0}


def contract(size: Size, backend: str, placement: str = "pipeline") -> Preprocessing:
    """gin/full.gin's contract at `size` with flow `backend` computed in `placement`."""
    return Preprocessing(num_frames=size.frames, crop_size=size.crop,
                         flow=FlowSettings(backend=backend, placement=placement))


def run_name(kind: str, backend: str, placement: str) -> str:
    return f"{kind}/{backend}/{placement}"


def tf_stages(pre: Preprocessing) -> tuple[str, ...]:
    """The online steps of a contract (no flow stage when the model computes it)."""
    return tuple(name for name in TF_STAGES if name != "flow" or not pre.flow_in_model)


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
    """Each online step as a `tf.function` of the library's own functions, in `pipeline.process`'s order (see the
    module docstring); `chain(raw, key)` runs them one after the other, fetching every result, with a clock."""
    s, rules = pre.crop_size, pre.augmentation
    sent = 2 if pre.flow_in_model else int(pre.channels.use_rgb)  # crops of each pair sent (`network_inputs`)
    fn = functools.partial(tf.function, reduce_retracing=True)

    def occluder(ex, key):
        return occlusion.slic_occluder(ex, key, enabled=rules.slic_occluders,
                                       min_visible_joints=rules.min_visible_joints)

    def boxes(joints14_2d):
        inside = pipeline.in_frame(joints14_2d)
        return (inside, *crops.person_boxes(joints14_2d, inside, pre.box, pipeline.IMAGE_HW))

    def profiles(points, centre, size, visible):
        current, _ = crops.keypoints_in_pair_boxes(points, centre, size, s)
        return keypoints.gaussian_profiles(current, visible[:-1], s, pre.sigma_px)

    def whole(raw, key):
        ex = pipeline.process(raw, key, pre)
        return ex["inputs"], pipeline.labels_of(ex, pre)

    return {
        "place_person": fn(lambda raw: pipeline.place_person(raw, pre)),
        "occluder": fn(occluder),
        "composite": fn(pipeline.composite_frames),
        "total_occlusion": fn(lambda ex, key: occlusion.total_occlusion(
            ex, key, probability=rules.total_occlusion_probability, max_frames=pre.max_total_occlusion)["occluded"]),
        "visibility": fn(lambda ex, key: keypoints.keypoint_visibility(ex, key, rules)["keypoints_visible"]),
        "boxes": fn(boxes),
        "crops": fn(lambda frames, centre, size: crops.paired_crops(frames, centre, size, s)),
        "flow": fn(lambda pairs: flow.flow_channels(flow.compute_flow(pairs, pre.flow), pre.flow.divisor)),
        "heatmap_profiles": fn(profiles),
        "write_inputs": fn(lambda pairs, flow3, gx, gy, occluded: pipeline.write_inputs(
            pairs if sent else None, sent, flow3, (gx, gy), occluded, s)),
        "labels": fn(lambda ex: pipeline.labels_of(ex, pre)),
        WHOLE: fn(whole),
        "chain": functools.partial(_chain, pre=pre),
    }


def _fetch(value) -> None:
    for tensor in tf.nest.flatten(value):
        np.asarray(tensor)


def _chain(fns: dict, raw, key, timer, pre: Preprocessing) -> None:
    """`pipeline.process` + `labels_of` step by step (the channels of gin/full.gin: flow and heatmaps), each step's
    result fetched inside its stage."""
    def step(name, *args):
        with timer(name):
            out = fns[name](*args)
            _fetch(out)
        return out

    keys = pipeline._step_keys(key, 3)
    ex = step("place_person", raw)
    ex = step("occluder", ex, keys[0])
    ex = dict(ex, frames=step("composite", ex["segm"], ex["occluder"], ex["person_rgb"], ex["background"]))
    ex = dict(ex, occluded=step("total_occlusion", ex, keys[1]))
    ex = dict(ex, keypoints_visible=step("visibility", ex, keys[2]))
    inside, centre, size = step("boxes", ex["joints14_2d"])
    ex = dict(ex, in_frame=inside, box_centre=centre, box_size=size)
    pairs = step("crops", ex["frames"], centre, size)
    flow3 = None if pre.flow_in_model else step("flow", pairs)
    gx, gy = step("heatmap_profiles", ex["joints14_2d"][:, :keypoints.NUM_HEATMAPS], centre, size,
                  ex["keypoints_visible"])
    step("write_inputs", pairs, flow3, gx, gy, ex["occluded"])
    step("labels", ex)
    with timer(WHOLE):
        _fetch(fns[WHOLE](raw, key))


def time_tf_stages(kept: list, fns: dict, repeats: int = 1) -> list[dict]:
    """The online steps one at a time on the kept raw examples (a first untimed pass traces every shape)."""
    def run_once(clock: common.StageClock | None):
        timer = clock.stage if clock else (lambda name: contextlib.nullcontext())
        for raw, key in kept:
            fns["chain"](fns, raw, key, timer)

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

def time_end_to_end(source, pre: Preprocessing, examples: int, threads: int, seed: int, warmup: int = 2) -> dict:
    """`make_dataset` over `warmup + examples` drawn examples with `threads` tf.data threads, after an untimed pass
    over its first batch (XLA compilation, body models, file handles). CPU seconds of the whole process: at steady
    state (from the arrival of the `warmup`-th kept clip to the last: what each further clip costs, the pipeline's
    look-ahead full at both ends), and apart the start (the iterator's creation to the `warmup`-th clip: tf.data
    instantiating its functions, a few tenths of a second, and the first clips)."""
    ds = pipeline.make_dataset(source, pre, batch_size=1, seed=seed, num_examples=examples + warmup)
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
    ds = ds.with_options(options)
    for _ in ds.take(1):
        pass
    marks, clips, rejected = [(0, time.perf_counter(), common.cpu_s())], 0, None
    for _, labels in ds:
        clips += int(labels["index"].shape[0])
        marks.append((clips, time.perf_counter(), common.cpu_s()))
        rejected = labels["rejected"][-1].numpy()
    first = next((m for m in marks if m[0] >= warmup), marks[-1])
    last = marks[-1]
    timed, wall, cpu = last[0] - first[0], last[1] - first[1], last[2] - first[2]
    return {"threads": threads, "examples_drawn": examples + warmup, "warmup_clips": first[0], "clips": timed,
            "rejected": dict(zip(sources.REASONS, [] if rejected is None else rejected.tolist())),
            "wall_s": wall, "cpu_s": cpu, "cpu_s_per_clip": cpu / timed if timed else None,
            "clips_per_s": timed / wall if timed else 0.0,
            "clips_per_s_per_core": timed / wall / threads if timed else 0.0,
            "clips_per_cpu_s": timed / cpu if timed and cpu > 0 else None,
            "start": {"clips": first[0], "wall_s": first[1] - marks[0][1], "cpu_s": first[2] - marks[0][2]}}


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

def measure(kind: str, backend: str, placement: str, data: sim_data.SimData, size: Size, clips: int,
            threads: tuple[int, ...], seed: int) -> dict:
    """Every measurement of one (source, flow backend, flow placement)."""
    pre = contract(size, backend, placement)
    source = make_source(kind, data, size.frames)
    fns = stage_functions(pre)
    timer = time_file_source if kind == "files" else time_tfds_source
    source_rows, kept = timer(source, fns["place_person"], clips, seed)
    tf_rows = time_tf_stages(kept, fns)
    end_to_end = [time_end_to_end(make_source(kind, data, size.frames), pre, clips, n, seed, size.warmup)
                  for n in threads]
    source_cpu = sum(r["cpu_ms_per_clip"] for r in source_rows)
    whole_cpu = next(r["cpu_ms_per_clip"] for r in tf_rows if r["stage"] == WHOLE)
    finished = [r for r in end_to_end if r["clips"]]
    summary = {
        "cpu_ms_per_clip_stages": source_cpu + whole_cpu,
        "clips_per_cpu_s_from_stages": 1e3 / (source_cpu + whole_cpu),
        "clips_per_cpu_s_end_to_end": max((r["clips_per_cpu_s"] or 0.0 for r in finished), default=None),
        "cpu_s_per_clip_end_to_end": min((r["cpu_s_per_clip"] for r in finished), default=None),
        "clips_per_s_per_core_wall": max((r["clips_per_s_per_core"] for r in finished), default=None),
    }
    goal = GOALS.get(run_name(kind, backend, placement))
    if goal is not None and summary["clips_per_cpu_s_end_to_end"] is not None:
        summary.update(goal_clips_per_cpu_s=goal, goal_met=summary["clips_per_cpu_s_end_to_end"] >= goal)
    return {
        "source": kind, "backend": backend, "placement": placement,
        "python_free": not source.python and not (pre.channels.use_flow and pre.flow.python),
        "wire_groups": list(pre.wire_names), "wire_channels": pre.wire_channels,
        "source_stages": source_rows, "tf_stages": tf_rows, "end_to_end": end_to_end, "summary": summary,
    }


def runs_of(source_kinds, backends, placements) -> list[tuple[str, str, str]]:
    """(source, backend, placement) to measure: every combination, flow in the model with the TF backends only."""
    return [(kind, backend, placement) for kind in source_kinds for backend in backends for placement in placements
            if placement == "pipeline" or not FlowSettings(backend=backend).python]


def run(out=None, small: bool = False, clips: int | None = None, source_kinds: tuple[str, ...] = SOURCES,
        backends: tuple[str, ...] = BACKENDS, placements: tuple[str, ...] = PLACEMENTS,
        threads: tuple[int, ...] = (1, 2), data=None, seed: int = 1) -> dict:
    """Every measurement for every (source, backend, placement); prints tables and writes the report to `out` (JSON)
    when given. `data`: a folder for the simulator data (made if absent, reused otherwise; default a temporary
    one)."""
    size = SMALL if small else FULL
    clips = clips or size.clips
    unknown = ([s for s in source_kinds if s not in SOURCES] + [b for b in backends if b not in BACKENDS]
               + [p for p in placements if p not in PLACEMENTS])
    if unknown:
        raise ValueError(f"pipeline benchmark: unknown {unknown}; sources from {SOURCES}, backends from {BACKENDS}, "
                         f"placements from {PLACEMENTS}")
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
            "placements": list(placements), "goals_clips_per_cpu_s": GOALS,
            "offline_background_windows": time_offline_windows(made, size), "runs": {},
        }
        for kind, backend, placement in runs_of(source_kinds, backends, placements):
            name = run_name(kind, backend, placement)
            result = measure(kind, backend, placement, made, size, clips, tuple(threads), seed)
            report["runs"][name] = result
            print(common.table(f"{name}: source stages, per clip", result["source_stages"]))
            print(common.table(f"{name}: online steps, per clip", result["tf_stages"]))
            print(common.table(f"{name}: make_dataset end to end", [
                {k: r[k] for k in ("threads", "clips", "cpu_s", "wall_s", "clips_per_cpu_s",
                                   "clips_per_s_per_core")} for r in result["end_to_end"]]), flush=True)
            if out is not None:  # after every run: a long benchmark that is stopped keeps what it measured
                common.write_json(out, {**report, "machine": common.machine(load_average_before=load_before)})
    report["machine"] = common.machine(load_average_before=load_before)
    print(common.table("summary", [{"run": name, **r["summary"]} for name, r in report["runs"].items()]))
    if out is not None:
        print(f"wrote {common.write_json(out, report)}")
    return report
