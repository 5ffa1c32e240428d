"""The SMPL-layout body layer (`mhr_tf.body.smpl`): forward and forward+backward at the training batch.

B = 93 bodies: 3 clips x 31 frames (paper §4.3: "31 frames uses batch size 3"). Two models: the open body model and
a 6890-vertex model of random arrays with SMPL's shapes (it is *not* SMPL: it only has SMPL's size, so the timing
matches what the official model would cost). Each mode runs as a `tf.function`, with and without XLA, and the numpy
reference `forward_numpy` for scale.
"""
from __future__ import annotations

import statistics
import time

import numpy as np
import tensorflow as tf

from mhr_tf.bench import common
from mhr_tf.body import joints, smpl

TRAINING_BATCH = 3 * 31  # paper §4.3: 3 clips of 31 frames
SMPL_NUM_FACES = 13776  # SMPL's mesh: 6890 vertices, 13776 triangles


def random_smpl_sized_model(seed: int = 0) -> smpl.BodyModel:
    """Random arrays with SMPL's shapes and SMPL's kinematic tree; named as what it is, not SMPL."""
    rng = np.random.default_rng(seed)
    num_vertices = smpl.SMPL_NUM_VERTICES
    weights = np.zeros((num_vertices, smpl.NUM_JOINTS))
    for v in range(num_vertices):  # SMPL skins each vertex to at most 4 joints
        weights[v, rng.choice(smpl.NUM_JOINTS, 4, replace=False)] = rng.random(4)
    J_regressor = rng.random((smpl.NUM_JOINTS, num_vertices)) * (rng.random((smpl.NUM_JOINTS, num_vertices)) < 0.01)
    arrays = {
        "v_template": rng.normal(0.0, 0.3, (num_vertices, 3)),
        "shapedirs": rng.normal(0.0, 0.01, (num_vertices, 3, smpl.NUM_BETAS)),
        "posedirs": rng.normal(0.0, 0.001, (num_vertices, 3, smpl.NUM_POSE_FEATURES)),
        "J_regressor": J_regressor / J_regressor.sum(axis=1, keepdims=True),
        "weights": weights / weights.sum(axis=1, keepdims=True),
        "kintree_table": np.stack([joints.SMPL_PARENTS, np.arange(smpl.NUM_JOINTS)]),
        "f": rng.integers(0, num_vertices, (SMPL_NUM_FACES, 3)),
    }
    return smpl.body_model_from_arrays(arrays, source="random arrays of SMPL's shapes (not SMPL)")


def time_ms(run, repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median and best wall milliseconds of `run()` over `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times)}


def benchmark_model(name: str, model: smpl.BodyModel, batch: int, repeats: int) -> list[dict]:
    rng = np.random.default_rng(1)
    betas = tf.constant(rng.normal(0.0, 1.0, (batch, smpl.NUM_BETAS)), tf.float32)
    pose = tf.constant(rng.normal(0.0, 0.4, (batch, smpl.NUM_JOINTS, 3)), tf.float32)
    trans = tf.constant(rng.normal(0.0, 1.0, (batch, 3)), tf.float32)
    constants = smpl.body_constants(model)

    def forward(b, p, t):
        return smpl.smpl_forward(constants, b, p, t)

    def forward_backward(b, p, t):
        with tf.GradientTape() as tape:
            tape.watch([b, p])
            outputs = smpl.smpl_forward(constants, b, p, t)
            loss = tf.reduce_sum(tf.square(outputs["vertices"])) + tf.reduce_sum(tf.square(outputs["joints14"]))
        return tape.gradient(loss, [b, p])

    runs = {
        "forward": tf.function(forward),
        "forward+backward": tf.function(forward_backward),
        "forward (XLA)": tf.function(forward, jit_compile=True),
        "forward+backward (XLA)": tf.function(forward_backward, jit_compile=True),
    }
    results = []
    for mode, fn in runs.items():
        row = {"model": name, "vertices": model.num_vertices, "batch": batch, "mode": mode}
        try:
            row.update(time_ms(lambda: fn(betas, pose, trans), repeats))
        except (tf.errors.OpError, NotImplementedError) as error:  # e.g. XLA unavailable on this build
            row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
        results.append(row)
    numpy_inputs = (betas.numpy(), pose.numpy(), trans.numpy())
    row = {"model": name, "vertices": model.num_vertices, "batch": batch, "mode": "numpy forward_numpy"}
    row.update(time_ms(lambda: smpl.forward_numpy(model, *numpy_inputs), max(3, repeats // 4), warmup=1))
    results.append(row)
    return results


def print_table(results: list[dict]) -> None:
    header = f"{'model':<20} {'V':>6} {'B':>4} {'mode':<24} {'median ms':>10} {'min ms':>8} {'bodies/s':>9}"
    print(header)
    print("-" * len(header))
    for row in results:
        if "error" in row:
            print(f"{row['model']:<20} {row['vertices']:>6} {row['batch']:>4} {row['mode']:<24} {row['error']}")
            continue
        rate = row["batch"] / row["median_ms"] * 1e3
        print(f"{row['model']:<20} {row['vertices']:>6} {row['batch']:>4} {row['mode']:<24} "
              f"{row['median_ms']:>10.1f} {row['min_ms']:>8.1f} {rate:>9.0f}")


def run(out=None, batch: int = TRAINING_BATCH, repeats: int = 20) -> dict:
    """Times both models in every mode; prints the table and writes the report to `out` (JSON) when given."""
    models = {"open (neutral)": smpl.load_body_model(None, "neutral"),
              "random SMPL-sized": random_smpl_sized_model()}
    results = []
    for name, model in models.items():
        results += benchmark_model(name, model, batch, repeats)
    print_table(results)
    report = {
        "benchmark": "SMPL layer forward and forward+backward (mhr_tf.bench.body)",
        "settings": {"batch": batch, "repeats": repeats},
        "machine": common.machine(),
        "note": "CPU only, wall-clock milliseconds; the machine may be shared, so times vary between runs.",
        "results": results,
    }
    if out is not None:
        print(f"wrote {common.write_json(out, report)}")
    return report
