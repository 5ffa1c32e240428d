"""The simulator on one core: the renderer's (`mhr_tf.render`) frames/s (budget: 31 frames of a ~6k-vertex person
at 320x240 in under 2 s), background videos per minute, and `make_synthetic`'s SURREAL-format and shifted-domain
sequences per minute.

The person is the open body model's rest template (`mhr_tf.body.smpl.load_body_model()`), turning on the spot.
The report is merged into its JSON under the keys "renderer", "backgrounds" and "make_synthetic" (other keys of that
file are kept).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from mhr_tf import render
from mhr_tf.bench import common
from mhr_tf.geometry import SURREAL_IMAGE_HW, SURREAL_INTRINSICS
from mhr_tf.sim import appearance, backgrounds, make

BUDGET_S = 2.0  # 31 frames at 320x240 on one core


def _person() -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """The open body model's rest template: (name, vertices [V, 3] metres, faces [F, 3], part_ids [V])."""
    from mhr_tf.body.smpl import load_body_model
    model = load_body_model()
    return f"open body model template ({model.source})", model.v_template, model.faces, model.part_ids


def _sequence(vertices_rest: np.ndarray, frames: int, distance_m: float) -> np.ndarray:
    """[T, V, 3] camera-frame vertices: the person turning once about the vertical and swaying sideways,
    `distance_m` in front of the camera."""
    out = []
    for t in range(frames):
        angle = 2 * np.pi * t / frames
        c, s = np.cos(angle), np.sin(angle)
        turned = vertices_rest @ np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])
        # Rest frame (y up, facing +z) to camera frame (y down, facing the camera at -z).
        cam = turned * np.array([1.0, -1.0, -1.0])
        out.append(cam + np.array([0.3 * np.sin(angle), 0.1, distance_m]))
    return np.stack(out)


def benchmark_renderer(frames: int = 31, repeats: int = 3, png_dir: Path | None = None) -> dict:
    """Seconds per `frames`-frame clip for a few configurations (best of `repeats`, wall clock)."""
    name, vertices_rest, faces, part_ids = _person()
    rng = np.random.default_rng(0)
    colours = appearance.clothing_colors(vertices_rest, part_ids, rng)
    light_dir, ambient = appearance.random_lighting(rng)
    background = np.full((*SURREAL_IMAGE_HW, 3), 96, dtype=np.uint8)
    rows = []
    for distance in (6.0, 3.0):
        clip = _sequence(vertices_rest, frames, distance)
        for cull in (False, True):
            best, pixels = np.inf, 0
            for _ in range(repeats):
                start = time.perf_counter()
                for vertices_cam in clip:
                    out = render.render(vertices_cam, faces, SURREAL_INTRINSICS, SURREAL_IMAGE_HW, colours,
                                        part_ids, light_dir, ambient, background, cull_back_faces=cull)
                    pixels = max(pixels, int(out.mask.sum()))
                best = min(best, time.perf_counter() - start)
            rows.append({"distance_m": distance, "cull_back_faces": cull, "frames": frames,
                         "seconds": round(best, 4), "frames_per_s": round(frames / best, 1),
                         "max_body_pixels": pixels, "within_budget": bool(best * 31 / frames < BUDGET_S)})
            if png_dir is not None and not cull:
                import cv2
                Path(png_dir).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(Path(png_dir) / f"render_{distance:.0f}m.png"), out.rgb[..., ::-1])
    return {"person": name, "vertices": int(len(vertices_rest)), "faces": int(len(faces)),
            "image_hw": list(SURREAL_IMAGE_HW), "budget_s_per_31_frames": BUDGET_S, "rows": rows,
            # Wall-clock timings: a busy machine (other processes on the same cores) inflates them.
            "load_average_1min": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count()}


def benchmark_backgrounds(videos: int = 5, frames: int = 31) -> dict:
    """Seconds to make and write `videos` background videos of `frames` frames (mp4), sizes as drawn."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        backgrounds.write_background_set(out, videos, frames, seed=0)
        seconds = time.perf_counter() - start
    return {"videos": videos, "frames": frames, "seconds": round(seconds, 3),
            "videos_per_min": round(60 * videos / seconds, 1), "frames_per_s": round(videos * frames / seconds, 1)}


def benchmark_make_synthetic(sequences: int = 2, frames: int = 31) -> dict:
    """Sequences per minute on one core for `make_synthetic` surreal and threedpw (one process, CPU time)."""
    rows = {}
    with tempfile.TemporaryDirectory() as out:
        make.write_surreal_sequence(out, 0, 0, 4)  # load the body models once, outside the timing
        for kind, write in (("surreal", make.write_surreal_sequence), ("threedpw", make.write_threedpw_sequence)):
            start, cpu = time.perf_counter(), common.cpu_s()
            for index in range(1, sequences + 1):
                write(Path(out) / kind, 0, index, frames)
            seconds, cpu_seconds = time.perf_counter() - start, common.cpu_s() - cpu
            rows[kind] = {"sequences": sequences, "frames": frames, "wall_s": round(seconds, 2),
                          "cpu_s": round(cpu_seconds, 2),
                          "sequences_per_min_per_core": round(60 * sequences / max(cpu_seconds, 1e-9), 1)}
    return rows


def run(out=None, frames: int = 31, repeats: int = 3, videos: int = 5, sequences: int = 2, png=None) -> dict:
    """Every simulator timing; prints them and merges them into `out` (JSON) when given."""
    result = benchmark_renderer(frames, repeats, png)
    print(f"renderer: {result['person']}, {result['vertices']} vertices, {result['faces']} faces, "
          f"load average {result['load_average_1min']}, {result['image_hw'][1]}x{result['image_hw'][0]}, one core")
    print(f"{'distance':>9} {'cull':>5} {'body px':>8} {'s/clip':>8} {'frames/s':>9} {'< 2 s/31':>9}")
    for row in result["rows"]:
        print(f"{row['distance_m']:>8.1f}m {str(row['cull_back_faces']):>5} {row['max_body_pixels']:>8d} "
              f"{row['seconds']:>8.3f} {row['frames_per_s']:>9.1f} {str(row['within_budget']):>9}")
    bg = benchmark_backgrounds(videos, frames)
    print(f"backgrounds: {bg['videos']} videos x {bg['frames']} frames in {bg['seconds']:.2f} s = "
          f"{bg['videos_per_min']:.0f} videos/min, {bg['frames_per_s']:.0f} frames/s (make + mp4 encode)")
    synthetic = benchmark_make_synthetic(sequences, frames)
    for kind, row in synthetic.items():
        print(f"make_synthetic {kind}: {row['sequences']} x {row['frames']} frames, "
              f"{row['sequences_per_min_per_core']:.0f} sequences/min per core (CPU time)")
    report = {"renderer": result, "backgrounds": bg, "make_synthetic": synthetic, "machine": common.machine()}
    if out is not None:
        merged = json.loads(Path(out).read_text()) if Path(out).exists() else {}
        print(f"wrote {common.write_json(out, {**merged, **report})}")
    return report
