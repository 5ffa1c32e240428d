"""Simulator benchmarks: renderer frames/s on one core (issue 4: 31 frames of a ~6k-vertex person at 320x240 in
under 2 s). Prints a table and merges its numbers into benchmarks/sim.json under the key "renderer".

    python scripts/benchmark_sim.py [--frames 31] [--repeats 3] [--out benchmarks/sim.json] [--png DIR]

The person is the open body model's template when mhr_tf.body.smpl is available, else a stand-in of 24
ellipsoids (one per SMPL part, ~6.3k vertices) in SMPL's rest T-pose; the table says which.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

# One core, as the budget states; set before numpy loads its BLAS.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from mhr_tf.body.joints import SMPL_PARTS  # noqa: E402
from mhr_tf.geometry import SURREAL_IMAGE_HW, SURREAL_INTRINSICS  # noqa: E402
from mhr_tf.sim import render  # noqa: E402

BUDGET_S = 2.0  # issue 4: 31 frames at 320x240 on one core

# Stand-in person: (part, centre, semi-axes) in metres, SMPL rest T-pose (y up, facing +z, left = +x).
_STAND_IN_PARTS = (
    ("pelvis", (0.0, -0.03, 0.0), (0.16, 0.10, 0.11)), ("spine1", (0.0, 0.10, 0.0), (0.14, 0.08, 0.10)),
    ("spine2", (0.0, 0.22, 0.0), (0.15, 0.08, 0.11)), ("spine3", (0.0, 0.33, 0.0), (0.16, 0.09, 0.11)),
    ("neck", (0.0, 0.50, 0.0), (0.06, 0.07, 0.06)), ("head", (0.0, 0.64, 0.02), (0.09, 0.12, 0.10)),
    ("left_collar", (0.10, 0.43, 0.0), (0.08, 0.05, 0.07)), ("right_collar", (-0.10, 0.43, 0.0), (0.08, 0.05, 0.07)),
    ("left_shoulder", (0.31, 0.45, 0.0), (0.14, 0.055, 0.055)),
    ("right_shoulder", (-0.31, 0.45, 0.0), (0.14, 0.055, 0.055)),
    ("left_elbow", (0.57, 0.45, 0.0), (0.13, 0.045, 0.045)), ("right_elbow", (-0.57, 0.45, 0.0), (0.13, 0.045, 0.045)),
    ("left_wrist", (0.74, 0.45, 0.0), (0.05, 0.02, 0.04)), ("right_wrist", (-0.74, 0.45, 0.0), (0.05, 0.02, 0.04)),
    ("left_hand", (0.82, 0.45, 0.0), (0.04, 0.015, 0.035)), ("right_hand", (-0.82, 0.45, 0.0), (0.04, 0.015, 0.035)),
    ("left_hip", (0.09, -0.28, 0.0), (0.08, 0.20, 0.08)), ("right_hip", (-0.09, -0.28, 0.0), (0.08, 0.20, 0.08)),
    ("left_knee", (0.10, -0.67, -0.01), (0.055, 0.20, 0.055)),
    ("right_knee", (-0.10, -0.67, -0.01), (0.055, 0.20, 0.055)),
    ("left_ankle", (0.10, -0.91, 0.03), (0.045, 0.035, 0.08)),
    ("right_ankle", (-0.10, -0.91, 0.03), (0.045, 0.035, 0.08)),
    ("left_foot", (0.10, -0.93, 0.13), (0.045, 0.02, 0.035)), ("right_foot", (-0.10, -0.93, 0.13), (0.045, 0.02, 0.035)),
)


def _ellipsoid(centre, axes, n_lat: int = 14, n_lon: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """A closed UV ellipsoid, faces wound counter-clockwise seen from outside (SMPL's convention)."""
    theta = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], axis=-1).reshape(-1, 3)
    unit = np.concatenate([[[0.0, 1.0, 0.0]], ring, [[0.0, -1.0, 0.0]]])
    faces = []
    for j in range(n_lon):
        faces.append([0, 1 + (j + 1) % n_lon, 1 + j])
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a, b = 1 + i * n_lon + j, 1 + i * n_lon + (j + 1) % n_lon
            faces += [[a, b, b + n_lon], [a, b + n_lon, a + n_lon]]
    last, base = len(unit) - 1, 1 + (n_lat - 2) * n_lon
    for j in range(n_lon):
        faces.append([last, base + j, base + (j + 1) % n_lon])
    return unit * np.asarray(axes) + np.asarray(centre), np.array(faces, dtype=np.int64)


def stand_in_person() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices_rest [V, 3] metres, faces [F, 3], part_ids [V]) of the 24-ellipsoid stand-in."""
    vertices, faces, parts = [], [], []
    for name, centre, axes in _STAND_IN_PARTS:
        v, f = _ellipsoid(centre, axes)
        faces.append(f + sum(len(x) for x in vertices))
        vertices.append(v)
        parts.append(np.full(len(v), SMPL_PARTS.index(name)))
    return np.concatenate(vertices), np.concatenate(faces), np.concatenate(parts)


def _person() -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    try:
        from mhr_tf.body.smpl import load_body_model
        model = load_body_model()
        return f"open body model template ({model.source})", model.v_template, model.faces, model.part_ids
    except Exception as error:  # the body model is optional here: the benchmark measures the renderer
        print(f"(body model unavailable: {type(error).__name__}: {error}; using the ellipsoid stand-in)")
        return "ellipsoid stand-in", *stand_in_person()


def _sequence(vertices_rest: np.ndarray, frames: int, distance_m: float) -> np.ndarray:
    """[T, V, 3] camera-frame vertices: the person turning on the spot and walking sideways, pelvis at 1 m."""
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
    """Seconds per `frames`-frame clip for a few configurations (best of `repeats`)."""
    name, vertices_rest, faces, part_ids = _person()
    rng = np.random.default_rng(0)
    colours = render.clothing_colors(vertices_rest, part_ids, rng)
    light_dir, ambient = render.random_lighting(rng)
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
                png_dir.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(png_dir / f"render_{distance:.0f}m.png"), out.rgb[..., ::-1])
    return {"person": name, "vertices": int(len(vertices_rest)), "faces": int(len(faces)),
            "image_hw": list(SURREAL_IMAGE_HW), "budget_s_per_31_frames": BUDGET_S, "rows": rows,
            "machine": platform.processor() or platform.machine(), "numpy": np.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=31)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "benchmarks" / "sim.json")
    parser.add_argument("--png", type=Path, default=None, help="write the last frame of each distance here")
    args = parser.parse_args()

    result = benchmark_renderer(args.frames, args.repeats, args.png)
    print(f"renderer: {result['person']}, {result['vertices']} vertices, {result['faces']} faces, "
          f"{result['image_hw'][1]}x{result['image_hw'][0]}, one core")
    print(f"{'distance':>9} {'cull':>5} {'body px':>8} {'s/clip':>8} {'frames/s':>9} {'< 2 s/31':>9}")
    for row in result["rows"]:
        print(f"{row['distance_m']:>8.1f}m {str(row['cull_back_faces']):>5} {row['max_body_pixels']:>8d} "
              f"{row['seconds']:>8.3f} {row['frames_per_s']:>9.1f} {str(row['within_budget']):>9}")

    # Merge: other benchmarks (make_synthetic) keep their own keys in the same file.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(args.out.read_text()) if args.out.exists() else {}
    merged["renderer"] = result
    args.out.write_text(json.dumps(merged, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
