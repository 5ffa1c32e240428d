"""bfloat16's effect on the numbers: the accuracy side of the model benchmark's bf16 variants (`mhr_tf.bench.model`),
measured through the training loop's step and the serving function."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from mhr_tf import export
from mhr_tf.bench.model import VARIANTS, Size, configure, learning_rate, random_batch, trainable_values
from mhr_tf.training.step import make_train_step


def bf16_accuracy(size: Size, fit_steps: int, seed: int = 1) -> dict:
    """mixed_bfloat16 against float32 from the same initial weights, on `size` (the full architecture, few pairs),
    every number through the loop's step (`make_train_step`) and the serving function; dropout off.

    1. One batch: the loss, the gradients (cosine to float32's, all variables and the trunk's conv kernels alone)
       and the served joints. The gradients are read off the step's own update with SGD at learning rate 1
       (w <- w - g; float32 rounding of w - g is far below the differences measured). For scale, the same numbers
       for float32 with another summation order (fused BatchNormalization): what rounding alone does.
    2. A fit of that one batch for `fit_steps` Adam steps at the loop's learning rate: the loss curves of float32,
       mixed_bfloat16 and float32 with the trunk frozen (how much of the fit needs the trunk's gradients).
    """
    configure(VARIANTS["baseline"])
    strategy = tf.distribute.MirroredStrategy()
    pre = size.preprocessing()
    features, labels = random_batch(size, seed)

    def build(initial=None, policy: str = "float32", **overrides) -> keras.Model:
        keras.mixed_precision.set_global_policy(policy)
        keras.utils.set_random_seed(seed)
        try:
            with strategy.scope():
                model = size.model_config(dropout=0.0, **overrides).build(
                    pre.crop_size, pre.channels.names, num_pairs=pre.num_pairs, pretrained=False)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        if initial is not None:
            model.set_weights(initial)
        return model

    def step_gradients(model) -> tuple[float, list[np.ndarray]]:
        saved = model.get_weights()
        with strategy.scope():
            optimizer = keras.optimizers.SGD(1.0)
        step = make_train_step(model, optimizer, strategy, global_batch=size.clips)
        before = trainable_values(model)
        logged, _ = step(features, labels)
        gradients = [b - a for b, a in zip(before, trainable_values(model))]
        model.set_weights(saved)  # the BatchNorm statistics moved too
        return float(logged["total"]), gradients

    def served_joints(model) -> np.ndarray:
        serve = export.Servable(model, export.input_spec(pre)).serve
        return np.asarray(serve(features["inputs"])["joints3d"], np.float64)

    def cosine(a, b) -> float:
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    reference = build()
    initial = reference.get_weights()
    candidates = {"mixed_bfloat16": build(initial, "mixed_bfloat16"),
                  "float32_fused_batch_norm": build(initial, fused_batch_norm=True)}
    loss32, gradients32 = step_gradients(reference)
    joints32 = served_joints(reference)
    conv = [i for i, v in enumerate(reference.trainable_variables) if "conv" in v.path and v.path.endswith("kernel")]
    same_weights = {"size": size.to_json(), "loss_float32": loss32}
    for name, model in candidates.items():
        loss, gradients = step_gradients(model)
        flat = [(np.ravel(a), np.ravel(b)) for a, b in zip(gradients32, gradients)]
        joints_mm = 1000.0 * np.abs(served_joints(model) - joints32)
        same_weights[name] = {
            "loss": loss, "loss_relative_difference": abs(loss - loss32) / abs(loss32),
            "gradient_cosine": cosine(np.concatenate([a for a, _ in flat]), np.concatenate([b for _, b in flat])),
            "trunk_conv_kernel_gradient_cosine_median": float(np.median([cosine(*flat[i]) for i in conv])),
            "trunk_conv_kernel_gradient_cosine_min": float(min(cosine(*flat[i]) for i in conv)),
            "inference_joints3d_abs_diff_mm_mean": float(joints_mm.mean()),
            "inference_joints3d_abs_diff_mm_max": float(joints_mm.max()),
        }

    curves = {}
    for name in ("float32", "mixed_bfloat16", "float32_frozen_trunk"):
        model = build(initial, "mixed_bfloat16" if name == "mixed_bfloat16" else "float32")
        model.get_layer("trunk").trainable = name != "float32_frozen_trunk"
        with strategy.scope():
            optimizer = keras.optimizers.Adam(learning_rate())
        step = make_train_step(model, optimizer, strategy, global_batch=size.clips)
        curves[name] = [float(step(features, labels)[0]["total"]) for _ in range(fit_steps)]
    return {"same_weights": same_weights,
            "fixed_batch_fit": {"size": size.to_json(), "steps": fit_steps, "learning_rate": _number(learning_rate()),
                                "loss_first_last": {name: [c[0], c[-1]] for name, c in curves.items()},
                                "loss_curves": curves}}


def print_accuracy(accuracy: dict) -> None:
    if "error" in accuracy:
        print(f"bf16 accuracy check: error: {accuracy['error'][:200]}")
        return
    print("bf16 vs float32, same weights and batch (float32 with fused BN: rounding alone, for scale):")
    for name, row in accuracy["same_weights"].items():
        if isinstance(row, dict) and "gradient_cosine" in row:
            print(f"  {name:<26} loss rel. diff {row['loss_relative_difference']:.2e}, gradient cosine "
                  f"{row['gradient_cosine']:.4f} (trunk conv kernels: median "
                  f"{row['trunk_conv_kernel_gradient_cosine_median']:.3f}), joints "
                  f"{row['inference_joints3d_abs_diff_mm_mean']:.2f} mm mean / "
                  f"{row['inference_joints3d_abs_diff_mm_max']:.2f} mm max")
    fit = accuracy["fixed_batch_fit"]
    print(f"fit of one batch, {fit['steps']} Adam steps at {fit['learning_rate']:g}: " + ", ".join(
        f"{name} {first:.3f} -> {last:.3f}" for name, (first, last) in fit["loss_first_last"].items()))


def _number(value):
    """A constant learning rate as a float; a schedule (gin-bound decay) by its name."""
    return float(value) if isinstance(value, (int, float)) else type(value).__name__
