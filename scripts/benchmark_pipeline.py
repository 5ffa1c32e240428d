"""Training-pipeline benchmark (issue 5): clips/s per core at paper size and each stage's share of the time.

    python scripts/benchmark_pipeline.py [--small] [--clips 12] [--backends dis,tvl1] [--parallel 1,2]
                                         [--data DIR] [--out benchmarks/pipeline.json]

Paper size: 31-frame clips, 224-px crops, every feature on (camera tracking, 4-D SLIC occluders, total occlusions,
flow + keypoint heatmaps, paper §3.1 and App. A/B). The data are the simulator's (`mhr_tf.sim.make.write_set`: 6
SURREAL-format clips and 4 background videos of 40 frames, camera motion cached with DIS), written under --data or a
temporary folder. `--small` is a smoke run: 8 frames, 64-px crops, 2 clips.

Three measurements, each in wall time and CPU time (other engineers share this machine, so wall time alone says
little; CPU seconds per clip are what one core pays):
1. the source's Python stages one by one (SURREAL decode, body joints, background decode, camera shift, SLIC), timed
   inside the real `SyntheticSource` by wrapping the functions it calls;
2. the online TF steps one by one, each a `tf.function` run in a loop on the same raw examples: tracking + occluder +
   composite + total occlusion + visibility + boxes, paired crops, flow, heatmaps (and the whole TF part at once);
3. the whole `make_dataset` graph end to end with 1 and 2 tf.data threads (`private_threadpool_size`).
Everything else runs on one thread per worker (TF intra-op, OpenCV and BLAS threads set to 1).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
import typing
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

GOAL_CLIPS_PER_S_PER_CORE = 1.0  # issue 5


class Size(typing.NamedTuple):  # not a dataclass: tests load this script without registering it as a module
    frames: int
    crop: int
    clips: int            # clips timed per measurement
    surreal_clips: int    # simulator data written
    background_videos: int
    video_frames: int


FULL = Size(frames=31, crop=224, clips=12, surreal_clips=6, background_videos=4, video_frames=40)
SMALL = Size(frames=8, crop=64, clips=2, surreal_clips=1, background_videos=1, video_frames=12)

SOURCE_STAGES = ("surreal_decode", "body_joints", "background_decode", "camera_shift", "slic")
TF_STAGES = ("tracking_occluder_composite", "crops", "flow", "heatmaps")


def _cpu_s() -> float:
    """CPU seconds of the whole process (every thread, user + system; CLOCK_PROCESS_CPUTIME_ID, not tick-based)."""
    return time.process_time()


class StageClock:
    """Accumulates wall and CPU seconds per named stage."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str):
        wall, cpu = time.perf_counter(), _cpu_s()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall
            self.cpu[name] = self.cpu.get(name, 0.0) + _cpu_s() - cpu

    def wrap(self, owner, attribute: str, name: str):
        """Time every call of `owner.attribute` as stage `name`; returns an undo function."""
        original = getattr(owner, attribute)

        def timed(*args, **kwargs):
            with self.stage(name):
                return original(*args, **kwargs)

        setattr(owner, attribute, timed)
        return lambda: setattr(owner, attribute, original)


def make_data(root: Path, size: Size) -> tuple[Path, Path]:
    """Simulator SURREAL clips and background videos (camera motion cached with DIS) under `root`, once."""
    from mhr_tf.data import camera_motion, videos
    from mhr_tf.sim import make
    surreal_root, background_root = root / "surreal", root / "backgrounds"
    if not surreal_root.exists():
        make.write_set("surreal", surreal_root, size.surreal_clips, size.video_frames, seed=0, progress=False)
    if not background_root.exists():
        make.write_set("backgrounds", background_root, size.background_videos, size.video_frames, seed=0,
                       progress=False)
    for entry in videos.list_videos(background_root):
        camera_motion.preprocess_video(entry.path, method="dis")
    return surreal_root, background_root


def _rows(clock: StageClock, clips: int) -> list[dict]:
    total_cpu = sum(clock.cpu.values()) or 1.0
    return [{"stage": name, "wall_ms_per_clip": round(1e3 * clock.wall[name] / clips, 2),
             "cpu_ms_per_clip": round(1e3 * clock.cpu[name] / clips, 2),
             "cpu_share": round(clock.cpu[name] / total_cpu, 3)} for name in clock.wall]


def time_source(source, clips: int) -> tuple[list[dict], list[dict]]:
    """Source stages, timed inside `SyntheticSource.__call__`; returns (rows, raw examples)."""
    from mhr_tf.body import smpl
    from mhr_tf.data import camera_motion, occlusion, surreal, videos
    source(0)  # loads the body model outside the timing
    clock = StageClock()
    undo = [clock.wrap(surreal, "load_clip", "surreal_decode"),
            clock.wrap(smpl, "forward_numpy", "body_joints"),
            clock.wrap(videos, "sample_background_clip", "background_decode"),
            clock.wrap(camera_motion, "load_median_flow", "camera_shift"),
            clock.wrap(occlusion, "slic_4d", "slic")]
    raws = []
    try:
        with clock.stage("source_total"):
            for index in range(clips):
                raws.append(source(index))
    finally:
        for restore in undo:
            restore()
    clock.wall["other"] = clock.wall.pop("source_total") - sum(clock.wall.values())
    clock.cpu["other"] = clock.cpu.pop("source_total") - sum(clock.cpu.values())
    return _rows(clock, clips), raws


def time_tf_steps(raws: list[dict], size: Size, backend: str, repeats: int = 1) -> list[dict]:
    """The online TF steps one at a time, each a tf.function looped over the same raw examples."""
    import tensorflow as tf

    from mhr_tf.data import crops, flow, keypoints, pipeline
    augmentation, channels = pipeline.Augmentation(), pipeline.Channels()
    spec = pipeline._source_spec(size.frames)
    signature = [{k: tf.TensorSpec(shape, dtype) for k, (dtype, shape) in spec.items()},
                 tf.TensorSpec([], tf.int64)]
    # With no channels, process_synthetic runs every step up to the boxes and only builds the indicator channel.
    no_channels = pipeline.Channels(use_rgb=False, use_flow=False, use_keypoints=False)

    @tf.function(input_signature=signature)
    def front(raw, index):
        ex = pipeline.process_synthetic(raw, index, seed=0, channels=no_channels, augmentation=augmentation,
                                        crop_size=size.crop, flow_backend=backend)
        return {k: ex[k] for k in ("frames", "box_centre", "box_size", "joints14_2d", "keypoints_visible")}

    @tf.function
    def paired(frames, centre, box):
        return crops.paired_crops(frames, centre, box, size.crop)

    @tf.function
    def flows(pairs):
        return flow.flow_channels(flow.compute_flow(pairs, backend))

    @tf.function
    def heatmaps(points, centre, box, visible):
        current, _ = crops.keypoints_in_pair_boxes(points[:, :keypoints.NUM_HEATMAPS], centre, box, size.crop)
        return keypoints.gaussian_heatmaps(current, visible[:-1], size.crop, keypoints.heatmap_sigma(size.crop))

    @tf.function(input_signature=signature)
    def whole(raw, index):
        return pipeline.synthetic_example(raw, index, seed=0, channels=channels, augmentation=augmentation,
                                          crop_size=size.crop, flow_backend=backend)

    inputs = [({k: tf.constant(v) for k, v in raw.items()}, tf.constant(i, tf.int64)) for i, raw in enumerate(raws)]

    def run_once(clock: StageClock | None):
        timer = clock.stage if clock else (lambda name: contextlib.nullcontext())
        for raw, index in inputs:
            with timer("tracking_occluder_composite"):
                ex = front(raw, index)
                ex["frames"].numpy()
            with timer("crops"):
                pairs = paired(ex["frames"], ex["box_centre"], ex["box_size"])
                pairs.numpy()
            with timer("flow"):
                flows(pairs).numpy()
            with timer("heatmaps"):
                heatmaps(ex["joints14_2d"], ex["box_centre"], ex["box_size"], ex["keypoints_visible"]).numpy()
            with timer("whole_tf_part"):
                features, _ = whole(raw, index)
                features["inputs"].numpy()

    run_once(None)  # traces every function
    clock = StageClock()
    for _ in range(repeats):
        run_once(clock)
    whole_wall, whole_cpu = clock.wall.pop("whole_tf_part"), clock.cpu.pop("whole_tf_part")
    rows = _rows(clock, len(inputs) * repeats)
    rows.append({"stage": "whole_tf_part (one tf.function)",
                 "wall_ms_per_clip": round(1e3 * whole_wall / (len(inputs) * repeats), 1),
                 "cpu_ms_per_clip": round(1e3 * whole_cpu / (len(inputs) * repeats), 1), "cpu_share": None})
    return rows


def time_end_to_end(surreal_root: Path, background_root: Path, size: Size, backend: str, threads: int,
                    clips: int) -> dict:
    """The whole make_dataset graph with `threads` tf.data threads: clips/s (wall) and clips per CPU-second."""
    import tensorflow as tf

    from mhr_tf.data import pipeline
    ds = pipeline.make_dataset(surreal_root, background_root, num_frames=size.frames, batch_size=1,
                               crop_size=size.crop, flow_backend=backend, num_examples=clips + 1, seed=1)
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
    bad = ds.bad_samples
    iterator = iter(ds.with_options(options))
    next(iterator)  # tracing and the first (untimed) clip
    wall, cpu, count = time.perf_counter(), _cpu_s(), 0
    for _ in iterator:
        count += 1
    wall, cpu = time.perf_counter() - wall, _cpu_s() - cpu
    return {"backend": backend, "threads": threads, "clips": count, "bad_samples": bad.count,
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "clips_per_s": round(count / wall, 3), "clips_per_s_per_core": round(count / wall / threads, 3),
            "clips_per_cpu_s": round(count / cpu, 3) if cpu > 0 else None}


def _table(title: str, rows: list[dict]) -> str:
    keys = list(rows[0])
    widths = [max(len(k), *(len(str(r.get(k))) for r in rows)) for k in keys]
    lines = [title, "  ".join(k.ljust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(str(r.get(k)).ljust(w) for k, w in zip(keys, widths)) for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="8 frames, 64-px crops, 2 clips: a smoke run")
    parser.add_argument("--clips", type=int, default=None, help="clips per measurement")
    parser.add_argument("--backends", default="dis,tvl1", help="flow backends, comma-separated (the first is "
                                                                "the default and gets every measurement)")
    parser.add_argument("--parallel", default="1,2", help="tf.data thread counts for the end-to-end run")
    parser.add_argument("--data", type=Path, default=None, help="simulator data folder (made if absent)")
    parser.add_argument("--out", type=Path, default=None, help="JSON (default benchmarks/pipeline[_small].json)")
    args = parser.parse_args(argv)
    size = SMALL if args.small else FULL
    clips = args.clips or size.clips
    backends = args.backends.split(",")
    threads = [int(n) for n in args.parallel.split(",")]
    out = args.out or Path("benchmarks") / ("pipeline_small.json" if args.small else "pipeline.json")

    import cv2
    import tensorflow as tf
    cv2.setNumThreads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(2)

    from mhr_tf.data import pipeline
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or Path(scratch)
        surreal_root, background_root = make_data(data, size)
        load_before = os.getloadavg()
        source = pipeline.SyntheticSource(surreal_root, background_root, num_frames=size.frames, seed=1)
        source_rows, raws = time_source(source, clips)
        print(_table("source (Python) stages, per clip", source_rows), flush=True)
        report = {
            "benchmark": "training pipeline (scripts/benchmark_pipeline.py)",
            "mode": "small" if args.small else "full", "size": size._asdict() | {"clips": clips},
            "goal_clips_per_s_per_core": GOAL_CLIPS_PER_S_PER_CORE,
            "augmentation": dataclasses.asdict(pipeline.Augmentation()),
            "channels": list(pipeline.Channels().names),
            "source_stages": source_rows, "tf_stages": {}, "end_to_end": [],
        }
        for i, backend in enumerate(backends):
            tf_rows = time_tf_steps(raws if i == 0 else raws[:max(1, clips // 4)], size, backend)
            report["tf_stages"][backend] = tf_rows
            print(_table(f"online TF steps ({backend} flow), per clip", tf_rows), flush=True)
        for i, backend in enumerate(backends):
            for n in threads if i == 0 else threads[:1]:
                row = time_end_to_end(surreal_root, background_root, size, backend, n,
                                      clips if i == 0 else max(2, clips // 4))
                report["end_to_end"].append(row)
                print(_table(f"end to end ({backend}, {n} thread(s))", [row]), flush=True)

    source_cpu = sum(r["cpu_ms_per_clip"] for r in source_rows)
    report["summary"] = {}
    for backend in backends:
        tf_cpu = next(r["cpu_ms_per_clip"] for r in report["tf_stages"][backend] if r["stage"].startswith("whole"))
        e2e = [r for r in report["end_to_end"] if r["backend"] == backend]
        report["summary"][backend] = {
            "cpu_ms_per_clip_stages": round(source_cpu + tf_cpu, 1),
            "clips_per_cpu_s_from_stages": round(1e3 / (source_cpu + tf_cpu), 3),
            "clips_per_cpu_s_end_to_end": max(r["clips_per_cpu_s"] or 0 for r in e2e),
            "clips_per_s_per_core_wall": max(r["clips_per_s_per_core"] for r in e2e),
        }
    report["summary"]["meets_goal"] = report["summary"][backends[0]]["clips_per_cpu_s_end_to_end"] >= \
        GOAL_CLIPS_PER_S_PER_CORE
    report["machine"] = {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                         "load_average_before": [round(v, 2) for v in load_before],
                         "load_average_after": [round(v, 2) for v in os.getloadavg()],
                         "python": sys.version.split()[0], "tensorflow": tf.__version__,
                         "opencv": cv2.__version__, "numpy": np.__version__}
    print(json.dumps(report["summary"], indent=1))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
