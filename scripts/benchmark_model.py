"""Time a full-size Motion HMR training step on this machine's CPU, against its own float32 matmul rate.

The step is `mhr_tf/train.py`'s `replica_step` (forward, `losses.motion_hmr_losses`, `GradientTape`, Adam) under the
same `tf.distribute.MirroredStrategy`, on the paper's batch: 3 clips x 30 paired boxes (31 frames, §4 and Table 3),
224-px crops (App. A), 16 channels = flow 3 + heatmaps 12 + occlusion indicator 1 (`gin/full.gin`), ResNet-50 trunk,
1024-unit BiLSTM, two heads, the open body model. Inputs and labels are random but valid (`/tmp/batch_contract.md`);
the speed does not depend on their values.

FLOPs come from TensorFlow's graph profiler (`tf.compat.v1.profiler`, `float_operation`) run on the traced step's
graph: it counts every Conv2D, Conv2DBackpropInput/Filter, MatMul and elementwise op it has a FLOP rule for (2 FLOPs
per multiply-add). The LSTM's matmuls run inside a `While` loop body that the profiler does not enter, so they are
added analytically. An analytic ResNet-50 count is printed next to it as a cross-check.

Each variant (XLA, bfloat16, threads, oneDNN on/off, ...) runs in a fresh process, because thread pools, oneDNN
switches and the Keras dtype policy are process-wide; each process measures the matmul rate right before and after
its steps, so a variant is compared with what the machine gave in the same minutes (the CPU is shared).

    python scripts/benchmark_model.py [--variants baseline,xla,...] [--repeats 3] [--out benchmarks/model.json]
    python scripts/benchmark_model.py --small      # tiny trunk, 64-px crops: runs in seconds (a smoke test)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as `python scripts/benchmark_model.py` from anywhere
    sys.path.insert(0, str(REPO_ROOT))


@dataclasses.dataclass(frozen=True)
class Size:
    """What one step processes: `clips` x `pairs` crops of `crop` px through the `architecture` trunk."""
    clips: int
    pairs: int
    crop: int
    architecture: str
    channels: tuple[str, ...] = ("flow", "heatmaps", "occlusion")  # gin/full.gin: Table 1's flow + keypoints
    model_kwargs: tuple = ()  # extra build_model arguments (the small mode shrinks the LSTM and heads)


# Paper §4 / Table 3: 31-frame clips (30 pairs), batch 3; App. A: 224-px crops; App. B: ResNet-50.
FULL = Size(clips=3, pairs=30, crop=224, architecture="resnet50")
# The smoke-test size: the same code path with `trunk.ARCHITECTURES["resnet_tiny"]` and small layers.
SMALL = Size(clips=1, pairs=3, crop=64, architecture="resnet_tiny",
             model_kwargs=(("lstm_units", 16), ("head_units", 16), ("regressor_units", 16)))
MATMUL_N = {"full": 4096, "small": 512}  # square float32 matmul: 2 n^3 FLOPs
MATMUL_REPEATS = 4
# The bf16 accuracy check: the full architecture on one clip of 4 pairs, and Adam steps fitting that batch.
ACCURACY = {"full": (dataclasses.replace(FULL, clips=1, pairs=4), 60), "small": (SMALL, 5)}
FIT_LEARNING_RATE = 1e-4  # gin/base.gin: learning_rate_schedule.base


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way of running the same step. `env` is set before TensorFlow is imported in the variant's process."""
    name: str
    description: str
    jit: str = ""  # XLA: "" none, "trunk" the ResNet's forward and backward, "step" the whole replica step
    policy: str = "float32"  # a Keras dtype policy
    intra_threads: int = 0  # 0: TensorFlow's default (all logical CPUs)
    inter_threads: int = 0
    strategy: str = "mirrored"  # as mhr_tf.train.make_strategy: "mirrored" or "default"
    env: tuple = ()  # (name, value) pairs
    grappler: tuple = ()  # (option, value) pairs for tf.config.optimizer.set_experimental_options
    fused_batch_norm: bool = False  # build_model(fused_batch_norm=True): the trunk's BN as one FusedBatchNormV3 op
    alters_float32_matmul: bool = False  # its settings may run the float32 reference matmul itself in bf16

    def process_safe(self) -> bool:
        """Whether it can run in an already started TensorFlow process (no thread or environment settings)."""
        return not (self.env or self.intra_threads or self.inter_threads or self.grappler)


VARIANTS = {v.name: v for v in (
    Variant("baseline", "train.py as it is: tf.function, float32, MirroredStrategy, default threads"),
    Variant("bf16", "keras mixed_bfloat16 policy (AVX512_BF16 via oneDNN); train.py's mixed_precision=True",
            policy="mixed_bfloat16"),
    Variant("fused_bn", "BatchNormalization as one FusedBatchNormV3 op (and one gradient op)",
            fused_batch_norm=True),
    Variant("bf16_fused_bn", "mixed_bfloat16 and fused_bn", policy="mixed_bfloat16", fused_batch_norm=True),
    Variant("xla_trunk", "the ResNet trunk's forward and backward under tf.function(jit_compile=True)",
            jit="trunk"),
    Variant("bf16_xla_trunk", "mixed_bfloat16 and xla_trunk", policy="mixed_bfloat16", jit="trunk"),
    Variant("threads_2x1", "intra-op 2 threads, inter-op 1", intra_threads=2, inter_threads=1),
    Variant("bf16_threads_2x1", "mixed_bfloat16, intra-op 2, inter-op 1", policy="mixed_bfloat16",
            intra_threads=2, inter_threads=1),
    Variant("fused_bn_threads_2x1", "fused_bn, intra-op 2, inter-op 1", fused_batch_norm=True, intra_threads=2,
            inter_threads=1),
    Variant("bf16_fused_bn_threads_2x1", "mixed_bfloat16, fused_bn, intra-op 2, inter-op 1",
            policy="mixed_bfloat16", fused_batch_norm=True, intra_threads=2, inter_threads=1),
    Variant("amp_onednn_bf16", "float32 model, grappler's auto_mixed_precision_onednn_bfloat16 rewrite",
            grappler=(("auto_mixed_precision_onednn_bfloat16", True),)),
    Variant("fpmath_bf16", "float32 model, oneDNN computes float32 convolutions/matmuls in bf16 "
            "(oneDNN's fpmath mode BF16, set through TensorFlow's and oneDNN's variables)",
            env=(("TF_SET_ONEDNN_FPMATH_MODE", "BF16"), ("ONEDNN_DEFAULT_FPMATH_MODE", "BF16")),
            alters_float32_matmul=True),
    Variant("xla_auto", "XLA auto-clustering of the step's graph (TF_XLA_FLAGS)",
            env=(("TF_XLA_FLAGS", "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit"),)),
    Variant("no_strategy", "as baseline without MirroredStrategy (default strategy)", strategy="default"),
    Variant("onednn_off", "TF_ENABLE_ONEDNN_OPTS=0 (Eigen kernels)", env=(("TF_ENABLE_ONEDNN_OPTS", "0"),)),
    Variant("xla_step", "the whole replica step (model, losses, Adam) under tf.function(jit_compile=True)",
            jit="step"),
)}
DEFAULT_VARIANTS = tuple(VARIANTS)
SMALL_VARIANTS = ("baseline",)


# ---------------------------------------------------------------------------------------------------------------
# Inside a variant's process
# ---------------------------------------------------------------------------------------------------------------

def configure(variant: Variant):
    """Import TensorFlow and Keras under the variant's settings (must run before any op)."""
    os.environ.update(dict(variant.env))
    import keras
    import tensorflow as tf
    if variant.intra_threads:
        tf.config.threading.set_intra_op_parallelism_threads(variant.intra_threads)
    if variant.inter_threads:
        tf.config.threading.set_inter_op_parallelism_threads(variant.inter_threads)
    if variant.grappler:
        tf.config.optimizer.set_experimental_options(dict(variant.grappler))
    keras.mixed_precision.set_global_policy(variant.policy)
    return tf, keras


def random_inputs(size: Size, rng: np.random.Generator) -> np.ndarray:
    """Inputs `[B, P, S, S, C]` float32 that look like the pipeline's, channel group by group: smooth images in
    [-1, 1], smooth flow through `flow.flow_channels` (/20 and magnitude), Gaussian keypoint heatmaps through
    `keypoints.gaussian_heatmaps` (90% of the joints visible), no total occlusion."""
    import tensorflow as tf
    from mhr_tf.body import joints as joint_sets
    from mhr_tf.data import flow, keypoints
    from mhr_tf.model import trunk
    n, s = size.clips * size.pairs, size.crop

    def smooth(channels: int, scale: float, grid: int = 4):  # a random field, bilinearly upsampled
        coarse = rng.normal(0.0, scale, (n, grid, grid, channels)).astype(np.float32)
        return tf.image.resize(coarse, (s, s), method="bilinear")

    groups = {
        "rgb": lambda: tf.tanh(smooth(3, 1.0, grid=8)),
        "flow": lambda: flow.flow_channels(smooth(2, 3.0) + rng.normal(0.0, 5.0, (n, 1, 1, 2)).astype(np.float32)),
        "heatmaps": lambda: keypoints.gaussian_heatmaps(
            tf.constant(np.clip(rng.normal(s / 2, s / 5, (n, len(joint_sets.HEATMAP_12), 2)), 0, s - 1),
                        tf.float32),
            tf.constant(rng.random((n, len(joint_sets.HEATMAP_12))) < 0.9), s, keypoints.heatmap_sigma(s)),
        "occlusion": lambda: tf.zeros((n, s, s, 1)),
    }
    crops = tf.concat([groups[name]() for name in trunk.channel_layout(size.channels)], axis=-1)
    return np.asarray(crops, np.float32).reshape(size.clips, size.pairs, s, s, -1)


def random_batch(size: Size, seed: int = 0):
    """Random features and labels with the batch contract's shapes, dtypes and ranges."""
    import tensorflow as tf
    from mhr_tf.body import joints as joint_sets
    from mhr_tf.model import trunk
    rng = np.random.default_rng(seed)
    b, p, s = size.clips, size.pairs, size.crop
    lsp, smpl24 = len(joint_sets.LSP_14), len(joint_sets.SMPL_24)

    def f32(x):
        return tf.constant(np.asarray(x, np.float32))

    inputs = random_inputs(size, rng)  # [B, P, S, S, C]
    body = rng.normal(0.0, 0.3, (b, p + 1, smpl24, 3)) + np.array([0.0, 0.0, 5.0])  # metres, ~5 m from the camera
    lsp3d = rng.normal(0.0, 0.3, (b, p + 1, lsp, 3)) + np.array([0.0, 0.0, 5.0])
    keypoints = rng.uniform(-1.0, 1.0, (b, p + 1, lsp, 2))  # normalized crop coordinates
    valid = (rng.random((b, p + 1, lsp)) < 0.9).astype(np.float32)
    pose = rng.normal(0.0, 0.2, (b, p + 1, 72))
    labels = {
        "joints3d_current": f32(lsp3d[:, :-1]), "joints3d_future": f32(lsp3d[:, 1:]),
        "smpl_joints3d_current": f32(body[:, :-1]), "smpl_joints3d_future": f32(body[:, 1:]),
        "keypoints2d_current": f32(keypoints[:, :-1]), "keypoints2d_future": f32(keypoints[:, 1:]),
        "keypoints2d_valid_current": f32(valid[:, :-1]), "keypoints2d_valid_future": f32(valid[:, 1:]),
        "pose_current": f32(pose[:, :-1]), "pose_future": f32(pose[:, 1:]),
        "betas": f32(rng.normal(0.0, 1.0, (b, 10))), "occluded": f32(np.zeros((b, p + 1))),
        "domain": tf.zeros([b], tf.int32),
        "index": tf.range(b, dtype=tf.int64),  # the pipeline's stream position, read by train.py's step
    }
    return {"inputs": f32(inputs)}, labels


def build(size: Size, **overrides):
    from mhr_tf.model import motion_hmr
    return motion_hmr.build_model(crop_size=size.crop, channels=size.channels, architecture=size.architecture,
                                  num_pairs=size.pairs, **{**dict(size.model_kwargs), **overrides})


def make_train_step(model, optimizer, strategy, global_batch: int, jit: str = ""):
    """`mhr_tf/train.py`'s train_step, minus the metric bookkeeping that does not change its cost.

    `jit`: "trunk" compiles the ResNet trunk's call with XLA (and its gradient with it); "step" compiles the whole
    replica step (model, losses, gradients, Adam).
    """
    import tensorflow as tf
    from mhr_tf import losses

    if jit == "trunk":  # XLA for the ResNet only: the BiLSTM's While loop cannot cross an XLA boundary in gradients
        pair_trunk = model.get_layer("trunk")
        pair_trunk.call = tf.function(pair_trunk.call, jit_compile=True)

    def call_model(features):
        return model(features, training=True)

    def replica_step(features, labels):
        with tf.GradientTape() as tape:
            outputs = call_model(features)
            terms = losses.motion_hmr_losses(labels, outputs)
            loss = tf.nn.compute_average_loss(terms["total"], global_batch_size=global_batch)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    inner = tf.function(replica_step, jit_compile=True) if jit == "step" else replica_step

    @tf.function
    def train_step(features, labels):
        per_replica = strategy.run(inner, args=(features, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return train_step


def make_forward(model, jit_compile: bool):
    """Inference: the model in inference mode, then App. B's assembly of P pairs into P + 1 frames."""
    import tensorflow as tf
    from mhr_tf.model import motion_hmr

    def forward(features):
        return motion_hmr.assemble_sequence(model(features, training=False))

    return tf.function(forward, jit_compile=jit_compile)


def profiler_flops(concrete_function) -> float:
    """FLOPs of one call of a traced function's top-level graph, by TensorFlow's profiler rules."""
    import tensorflow as tf
    options = tf.compat.v1.profiler.ProfileOptionBuilder(
        tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()).with_empty_output().build()
    level = tf.get_logger().level
    tf.get_logger().setLevel("ERROR")  # the profiler's FLOP rules log TF1 deprecation notices for every conv
    try:
        return float(tf.compat.v1.profiler.profile(graph=concrete_function.graph, options=options).total_float_ops)
    finally:
        tf.get_logger().setLevel(level)


def lstm_flops(size: Size, feature_dim: int, units: int, training: bool) -> float:
    """The bidirectional LSTM's matmul FLOPs (the profiler does not see inside its While loop).

    Per direction and pair: z = x W (D x 4U) + h R (U x 4U), 2 FLOPs per multiply-add. Backward: the gradients with
    respect to the inputs (x, h) and the weights (W, R) are two more matmuls of the same size each.
    """
    forward = 2 * size.clips * size.pairs * 2 * (feature_dim + units) * 4 * units
    return 3 * forward if training else forward


def resnet50_forward_flops(crop: int, channels: int) -> float:
    """Analytic ResNet-50 (v1, keras.applications) convolution FLOPs per crop, 2 per multiply-add, no top.

    Cross-check for the profiler's count: He et al. 2016's 3.8-4.1 GMAC figure at 224 px and 3 channels.
    """
    def conv(size_out, k, c_in, c_out):
        return 2 * size_out * size_out * k * k * c_in * c_out

    side = crop // 2  # conv1: 7x7 stride 2
    total = conv(side, 7, channels, 64)
    side //= 2  # 3x3 max pool, stride 2
    c_in = 64
    from mhr_tf.model import trunk
    for stage, (filters, blocks) in enumerate(trunk.ARCHITECTURES["resnet50"]):
        for block in range(blocks):
            stride = 2 if (block == 0 and stage > 0) else 1
            out_side = side // stride
            if block == 0:  # projection shortcut (1x1, stride of the block on the input)
                total += conv(out_side, 1, c_in, 4 * filters)
            total += conv(out_side, 1, c_in, filters)  # keras applies the stride in the first 1x1
            total += conv(out_side, 3, filters, filters) + conv(out_side, 1, filters, 4 * filters)
            c_in, side = 4 * filters, out_side
    return float(total)


def matmul_rate(tf, n: int, repeats: int, dtype: str = "float32") -> dict:
    """Best rate of an n x n by n x n `tf.linalg.matmul` (2 n^3 FLOPs) over `repeats` calls: GFLOP per wall-clock
    second and GFLOP per CPU second of this process (all its threads). Eager, so that a variant's graph rewrites
    (e.g. grappler's bf16 pass) leave the reference alone."""
    a = tf.cast(tf.random.stateless_normal((n, n), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_normal((n, n), seed=(3, 4)), dtype)
    times = timed(lambda: tf.linalg.matmul(a, b), 1, repeats)
    flop = 2.0 * n ** 3
    return {"gflops": flop / min(t["wall"] for t in times) / 1e9,
            "gflops_per_cpu_s": flop / min(t["cpu"] for t in times) / 1e9}


def timed(fn, warmup: int, repeats: int) -> list[dict]:
    """Wall-clock and process CPU seconds of `repeats` calls of `fn` (results fetched), after `warmup` calls."""
    for _ in range(warmup):
        _block(fn())
    times = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        _block(fn())
        times.append({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu})
    return times


def _block(result):
    import tensorflow as tf
    for value in tf.nest.flatten(result):
        np.asarray(value)


def run_variant(variant: Variant, size: Size, mode: str, warmup: int, repeats: int, infer: bool,
                count: bool) -> dict:
    """Everything measured for one variant, in this (fresh) process; `count`: also count the FLOPs."""
    tf, keras = configure(variant)
    matmul_n = MATMUL_N[mode]
    row = {"variant": variant.name, "description": variant.description,
           "settings": {k: v for k, v in dataclasses.asdict(variant).items() if k not in ("name", "description")},
           "load_average_1min_before": os.getloadavg()[0]}
    matmul = [matmul_rate(tf, matmul_n, MATMUL_REPEATS)]

    strategy = tf.distribute.MirroredStrategy() if variant.strategy == "mirrored" else tf.distribute.get_strategy()
    features, labels = random_batch(size)
    with strategy.scope():
        model = build(size, fused_batch_norm=variant.fused_batch_norm)
        optimizer = keras.optimizers.Adam(1e-4)
    step = make_train_step(model, optimizer, strategy, size.clips, variant.jit)
    start = time.perf_counter()
    _block(step(features, labels))
    row["first_step_s"] = time.perf_counter() - start  # tracing (and XLA compilation) and the first run
    times = timed(lambda: step(features, labels), warmup, repeats)
    best = min(times, key=lambda t: t["wall"])
    row.update(step_s_best=best["wall"], step_s_median=statistics.median(t["wall"] for t in times),
               step_cpu_s_best=min(t["cpu"] for t in times), step_times=times)
    matmul.append(matmul_rate(tf, matmul_n, MATMUL_REPEATS))

    forward_fn = None
    if infer:
        forward_fn = make_forward(model, variant.jit == "step")  # "trunk": already compiled inside the model
        try:
            infer_times = timed(lambda: forward_fn(features), 1, repeats)
        except tf.errors.OpError as error:  # keep the training numbers when only inference cannot run so
            row["inference_error"] = str(error).strip().splitlines()[0]
        else:
            frames = size.clips * (size.pairs + 1)  # App. B's assembly: P pairs -> P + 1 frames
            infer_best = min(t["wall"] for t in infer_times)
            row.update(inference_s_best=infer_best, inference_frames_per_s=frames / infer_best)
    bf16 = matmul_rate(tf, matmul_n, MATMUL_REPEATS, "bfloat16")  # the ceiling of the bf16 variants
    row.update(matmul_bf16_gflops=bf16["gflops"], matmul_bf16_gflops_per_cpu_s=bf16["gflops_per_cpu_s"])
    row.update(matmul_gflops=max(m["gflops"] for m in matmul),
               matmul_gflops_per_cpu_s=max(m["gflops_per_cpu_s"] for m in matmul), matmul_runs=matmul,
               load_average_1min_after=os.getloadavg()[0])
    if count:  # the FLOPs are the model's, whatever runs it: counted on float32, non-XLA graphs
        row["flops"] = count_flops(model, size, step.get_concrete_function(features, labels),
                                   forward_fn.get_concrete_function(features) if forward_fn else None)
    return row


def count_flops(model, size: Size, train_step, forward) -> dict:
    """The training step's and the forward pass's FLOPs: the profiler on the traced (float32, not XLA) graphs of
    `train_step` and `forward` (None: not counted), plus the BiLSTM analytically."""
    from mhr_tf.model import trunk
    units = model.get_layer("temporal").forward_layer.units
    dim = trunk.feature_dim(size.architecture)
    train_graph = profiler_flops(train_step)
    result = {
        "method": "tf.compat.v1.profiler float_operation on the traced tf.function graphs (2 FLOPs per "
                  "multiply-add), plus the BiLSTM's matmuls analytically (inside a While loop the profiler skips)",
        "train_step_gflop": (train_graph + lstm_flops(size, dim, units, True)) / 1e9,
        "profiler_train_graph_gflop": train_graph / 1e9,
        "lstm_train_gflop_analytic": lstm_flops(size, dim, units, True) / 1e9,
    }
    if forward is not None:
        result["forward_gflop"] = (profiler_flops(forward) + lstm_flops(size, dim, units, False)) / 1e9
    if size.architecture == "resnet50":
        channels = trunk.num_channels(size.channels)
        per_crop = resnet50_forward_flops(size.crop, channels)
        result["analytic_resnet50_forward_gflop_per_crop"] = per_crop / 1e9
        # Backward: the input and the weight gradients, each a convolution as costly as the forward one, except
        # conv1's input gradient (its input is data).
        conv1 = 2 * (size.crop // 2) ** 2 * 49 * channels * 64
        result["analytic_resnet50_train_gflop"] = size.clips * size.pairs * (3 * per_crop - conv1) / 1e9
    return result


# ---------------------------------------------------------------------------------------------------------------
# bfloat16's effect on the numbers (the accuracy side of the bf16 variants)
# ---------------------------------------------------------------------------------------------------------------

def bf16_accuracy(size: Size, fit_steps: int) -> dict:
    """mixed_bfloat16 against float32 from the same initial weights, on `size` (the full architecture, few pairs).

    1. One batch, dropout off: the loss, the gradients (cosine to float32's, all variables and the trunk's conv
       kernels alone) and the inference joints. For scale, the same numbers for float32 with another summation order
       (fused BatchNormalization): what rounding alone does at float32 precision.
    2. A fit of that one batch for `fit_steps` Adam steps at train.py's learning rate: the loss curves of float32,
       mixed_bfloat16 and float32 with the trunk frozen (how much of the fit needs the trunk's gradients).
    """
    tf, keras = configure(VARIANTS["baseline"])
    from mhr_tf import losses
    features, labels = random_batch(size, seed=1)

    def build_from(weights, policy="float32", **overrides):
        keras.mixed_precision.set_global_policy(policy)
        model = build(size, dropout=0.0, **overrides)
        keras.mixed_precision.set_global_policy("float32")
        if weights is not None:
            model.set_weights(weights)
        return model

    def loss_and_gradients(model):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(losses.motion_hmr_losses(labels, model(features, training=True))["total"])
        return loss, tape.gradient(loss, model.trainable_variables)

    def cosine(a, b):
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    reference = build_from(None)
    initial = reference.get_weights()
    candidates = {"mixed_bfloat16": build_from(initial, "mixed_bfloat16"),
                  "float32_fused_batch_norm": build_from(initial, fused_batch_norm=True)}
    loss32, gradients32 = tf.function(lambda: loss_and_gradients(reference))()
    joints32 = np.asarray(reference(features, training=False)["current/joints3d"], np.float64)
    conv = [i for i, v in enumerate(reference.trainable_variables) if "conv" in v.path and v.path.endswith("kernel")]
    same_weights = {"size": dataclasses.asdict(size)}
    for name, model in candidates.items():
        loss, gradients = tf.function(lambda model=model: loss_and_gradients(model))()
        flat = [(np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64)))
                for a, b in zip(gradients32, gradients)]
        joints_mm = 1000.0 * np.abs(np.asarray(model(features, training=False)["current/joints3d"], np.float64)
                                    - joints32)
        same_weights[name] = {
            "loss_relative_difference": abs(float(loss) - float(loss32)) / abs(float(loss32)),
            "gradient_cosine": cosine(np.concatenate([a for a, _ in flat]), np.concatenate([b for _, b in flat])),
            "trunk_conv_kernel_gradient_cosine_median": float(np.median([cosine(*flat[i]) for i in conv])),
            "trunk_conv_kernel_gradient_cosine_min": float(min(cosine(*flat[i]) for i in conv)),
            "inference_joints3d_abs_diff_mm_mean": float(joints_mm.mean()),
            "inference_joints3d_abs_diff_mm_max": float(joints_mm.max()),
        }

    curves = {}
    for name in ("float32", "mixed_bfloat16", "float32_frozen_trunk"):
        model = build_from(initial, "mixed_bfloat16" if name == "mixed_bfloat16" else "float32")
        model.get_layer("trunk").trainable = name != "float32_frozen_trunk"
        optimizer = keras.optimizers.Adam(FIT_LEARNING_RATE)

        @tf.function
        def fit_step(model=model, optimizer=optimizer):
            loss, gradients = loss_and_gradients(model)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return loss

        curves[name] = [float(fit_step()) for _ in range(fit_steps)]
    return {"same_weights": same_weights,
            "fixed_batch_fit": {"size": dataclasses.asdict(size), "steps": fit_steps,
                                "learning_rate": FIT_LEARNING_RATE,
                                "loss_first_last": {name: [c[0], c[-1]] for name, c in curves.items()},
                                "loss_curves": curves}}


# ---------------------------------------------------------------------------------------------------------------
# The driver: one process per variant, then the table and the JSON
# ---------------------------------------------------------------------------------------------------------------

def run_in_subprocess(task: str, args, env: dict, count: bool = False):
    """Runs `--worker task` in a fresh Python; returns its JSON answer or {"error": ...}."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "answer.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", task, "--worker_out", str(out),
                   "--warmup", str(args.warmup), "--repeats", str(args.repeats)]
        command += ["--small"] * args.small + ["--no_inference"] * args.no_inference + ["--count_flops"] * count
        completed = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
        if completed.returncode != 0 or not out.exists():
            tail = (completed.stderr or completed.stdout).strip().splitlines()[-5:]
            return {"error": " | ".join(tail)}
        return json.loads(out.read_text())


def summarise(rows: list[dict], flops: dict | None) -> dict:
    """Adds each variant's GFLOP/s and its ratios to the matmul rates; returns the run's best float32 matmul rates
    (over the variants that leave float32 matmuls in float32)."""
    ok = [r for r in rows if "error" not in r]
    plain = [r for r in ok if not r["settings"].get("alters_float32_matmul")]
    best = {"gflops": max((r["matmul_gflops"] for r in plain), default=float("nan")),
            "gflops_per_cpu_s": max((r["matmul_gflops_per_cpu_s"] for r in plain), default=float("nan"))}
    if not flops:
        return best
    for row in ok:
        alters = row["settings"].get("alters_float32_matmul")
        reference = best if alters else {"gflops": row["matmul_gflops"],
                                         "gflops_per_cpu_s": row["matmul_gflops_per_cpu_s"]}
        row["gflops"] = flops["train_step_gflop"] / row["step_s_best"]
        row["gflops_per_cpu_s"] = flops["train_step_gflop"] / row["step_cpu_s_best"]
        row["pct_of_matmul"] = 100.0 * row["gflops"] / reference["gflops"]
        row["pct_of_matmul_run_best"] = 100.0 * row["gflops"] / best["gflops"]
        row["pct_of_matmul_cpu_time"] = 100.0 * row["gflops_per_cpu_s"] / reference["gflops_per_cpu_s"]
        row["pct_of_bf16_matmul"] = 100.0 * row["gflops"] / row["matmul_bf16_gflops"]
        if "inference_s_best" in row and "forward_gflop" in flops:
            row["inference_gflops"] = flops["forward_gflop"] / row["inference_s_best"]
    return best


TABLE_COLUMNS = (  # title, width, decimals, row key
    ("variant", 26, None, "variant"), ("s/step", 7, 2, "step_s_best"), ("GFLOP/s", 8, 1, "gflops"),
    ("mm GF/s", 8, 1, "matmul_gflops"), ("% mm", 6, 1, "pct_of_matmul"), ("% best mm", 9, 1, "pct_of_matmul_run_best"),
    ("GF/cpu-s", 8, 1, "gflops_per_cpu_s"), ("% mm cpu", 8, 1, "pct_of_matmul_cpu_time"),
    ("% bf16 mm", 9, 1, "pct_of_bf16_matmul"), ("infer fr/s", 10, 2, "inference_frames_per_s"),
    ("load", 5, 1, "load_average_1min_before"))


def print_table(rows: list[dict], matmul_best: dict) -> None:
    header = " ".join(f"{title:<{width}}" if decimals is None else f"{title:>{width}}"
                      for title, width, decimals, _ in TABLE_COLUMNS)
    print(header)
    print("-" * len(header))
    for row in rows:
        if "error" in row:
            print(f"{row['variant']:<26} error: {row['error'][:150]}")
            continue
        cells = []
        for _, width, decimals, key in TABLE_COLUMNS:
            value = row.get(key)
            if decimals is None:
                cells.append(f"{value:<{width}}")
            else:
                cells.append(f"{value:>{width}.{decimals}f}" if value is not None else f"{'-':>{width}}")
        print(" ".join(cells))
    print(f"% mm: of the float32 matmul rate measured in the same process (before/after its steps); % best mm: of "
          f"the best over the run ({matmul_best['gflops']:.1f} GFLOP/s); % mm cpu: both per CPU-second used; "
          f"% bf16 mm: of the same process's bfloat16 matmul rate.")


def print_accuracy(accuracy: dict) -> None:
    if "error" in accuracy:
        print(f"bf16 accuracy check: error: {accuracy['error'][:200]}")
        return
    print("bf16 vs float32, same weights and batch (float32 with fused BN: rounding alone, for scale):")
    for name, row in accuracy["same_weights"].items():
        if name != "size":
            print(f"  {name:<26} loss rel. diff {row['loss_relative_difference']:.2e}, gradient cosine "
                  f"{row['gradient_cosine']:.4f} (trunk conv kernels: median {row['trunk_conv_kernel_gradient_cosine_median']:.3f}), "
                  f"joints {row['inference_joints3d_abs_diff_mm_mean']:.2f} mm mean / "
                  f"{row['inference_joints3d_abs_diff_mm_max']:.2f} mm max")
    fit = accuracy["fixed_batch_fit"]
    print(f"fit of one batch, {fit['steps']} Adam steps at {fit['learning_rate']:g}: " + ", ".join(
        f"{name} {first:.3f} -> {last:.3f}" for name, (first, last) in fit["loss_first_last"].items()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny trunk and crops: a smoke run of seconds")
    parser.add_argument("--variants", default=None, help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--warmup", type=int, default=0, help="untimed steps after the first (tracing) one")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per variant (best is reported)")
    parser.add_argument("--no_inference", action="store_true", help="skip the inference (forward) timing")
    parser.add_argument("--accuracy", choices=("auto", "yes", "no"), default="auto",
                        help="bf16 vs float32 accuracy check (auto: with a bf16 variant, not with --small)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/model[_small].json)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker_out", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--count_flops", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    mode = "small" if args.small else "full"
    size = SMALL if args.small else FULL
    args.repeats = args.repeats or (2 if args.small else 3)

    if args.worker:  # inside a fresh process started by run_in_subprocess
        if args.worker == "accuracy":
            answer = bf16_accuracy(*ACCURACY[mode])
        else:
            answer = run_variant(VARIANTS[args.worker], size, mode, args.warmup, args.repeats,
                                 not args.no_inference, args.count_flops)
        args.worker_out.write_text(json.dumps(answer))
        return 0

    names = args.variants.split(",") if args.variants else list(SMALL_VARIANTS if args.small else DEFAULT_VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; expected names from {list(VARIANTS)}")
    if "baseline" not in names:  # the reference, and its process counts the FLOPs
        names.insert(0, "baseline")
    accuracy = args.accuracy == "yes" or (args.accuracy == "auto" and not args.small
                                          and any(VARIANTS[n].policy != "float32" for n in names))
    out = args.out or Path("benchmarks") / ("model_small.json" if args.small else "model.json")
    import tensorflow as tf
    report = {
        "benchmark": "Motion HMR training step (scripts/benchmark_model.py)",
        "mode": mode,
        "size": dataclasses.asdict(size) | {"crops_per_step": size.clips * size.pairs,
                                            "inference_frames_per_batch": size.clips * (size.pairs + 1)},
        "machine": {"cpu": _cpu_name(), "logical_cpus": os.cpu_count(), "python": platform.python_version(),
                    "tensorflow": tf.__version__, "load_average_before": os.getloadavg()},
        "note": "The CPU is shared with other users. Times are the best of several steps; each variant's float32 "
                "matmul rate is measured in its own process right before and after its steps (% of matmul), and "
                "per CPU-second the process got (% of matmul, CPU time), which the sharing affects less.",
        "matmul": {"n": MATMUL_N[mode], "dtype": "float32", "repeats": MATMUL_REPEATS},
        "flops": None,
        "variants": [],
    }
    rows = report["variants"]
    for name in names:
        print(f"[{time.strftime('%H:%M:%S')}] {name} (load {os.getloadavg()[0]:.1f}) ...", flush=True)
        variant, count = VARIANTS[name], name == "baseline"
        if len(names) == 1 and variant.process_safe():  # e.g. the smoke test: no second TensorFlow start-up
            row = run_variant(variant, size, mode, args.warmup, args.repeats, not args.no_inference, count)
        else:
            row = {"variant": name, "description": variant.description,
                   **run_in_subprocess(name, args, dict(variant.env), count)}
        report["flops"] = report["flops"] or row.pop("flops", None)
        rows.append(row)
        report["matmul"].update(summarise(rows, report["flops"]))
        _write(out, report)  # after every variant: a long run that is stopped keeps what it measured
    if accuracy:
        print(f"[{time.strftime('%H:%M:%S')}] bf16 accuracy check ...", flush=True)
        report["bf16_accuracy"] = run_in_subprocess("accuracy", args, {})
    report["machine"]["load_average_after"] = os.getloadavg()
    print_table(rows, report["matmul"])
    if "bf16_accuracy" in report:
        print_accuracy(report["bf16_accuracy"])
    _write(out, report)
    print(f"wrote {out}")
    return 0


def _write(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    sys.exit(main())
