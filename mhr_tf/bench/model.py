"""The training loop's step on this machine's CPU, timed against the machine's own float32 matmul rate, and serving.

The step is `mhr_tf.training.step.make_train_step` itself (forward, `losses.motion_hmr_losses`, `GradientTape`,
Adam at the loop's learning rate, the logged terms and PA-MPJPE) on a model from `ModelConfig.build`, built as
`training.loop` builds it: under `tf.distribute.MirroredStrategy`, after `keras.utils.set_random_seed`. Full size is
gin/full.gin's recipe (the defaults of `Preprocessing` and `ModelConfig`): 3 clips x 30 paired boxes (31 frames,
§4 and Table 3), 224-px crops (App. A), flow + heatmaps + occlusion indicator = 16 channels, ResNet-50 trunk,
1024-unit BiLSTM, two heads, the open body model. Inputs and labels are random but valid (the batch contract's
shapes, dtypes and ranges, drawn with the pipeline's own flow and heatmap functions); the speed does not depend on
their values. Every report records the first step's logged loss and weight change, so a reader can check that the
timed step is the loop's (tests/test_benchmarks.py does).

Inference is `export.Servable`'s serving function (what TF Serving, evaluation and prediction run: the model in
inference mode with vertices, App. B's assembly of P pairs into P + 1 frames).

FLOPs come from TensorFlow's graph profiler (`tf.compat.v1.profiler`, `float_operation`) on the traced step's graph
(2 FLOPs per multiply-add). The BiLSTM's matmuls run inside a `While` loop the profiler does not enter, so they are
added analytically; an analytic ResNet-50 count is reported beside it as a cross-check.

Each variant (bfloat16, fused BatchNorm, XLA for the trunk, threads, oneDNN switches, ...) runs in a fresh process,
because thread pools, oneDNN switches and the Keras dtype policy are process-wide; each process measures the matmul
rate right before and after its steps, so a variant is compared with what the machine gave in the same minutes.
With a bfloat16 variant, `model_accuracy` also says what bfloat16 does to the loss, the gradients and the fit.
"""
from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mhr_tf.bench import common
from mhr_tf.body import joints as joint_sets
from mhr_tf.data import flow, keypoints
from mhr_tf.data.preprocessing import Channels, FlowSettings, Preprocessing
from mhr_tf.model import motion_hmr, trunk
from mhr_tf.training import loop
from mhr_tf.training.step import make_train_step


@dataclasses.dataclass(frozen=True)
class Size:
    """What one step processes: `clips` x `pairs` crops of `crop` px through the `architecture` trunk."""
    clips: int
    pairs: int
    crop: int
    architecture: str
    channels: Channels = Channels()  # gin/full.gin: flow + keypoints (Table 1's best row)
    model_overrides: tuple = ()  # other ModelConfig fields (the small size shrinks the LSTM and heads)

    def preprocessing(self, flow_in_model: bool = False) -> Preprocessing:
        """The contract of this size; `flow_in_model`: TF TV-L1 as the model's first layer (FlowSettings.placement
        "model"), so the inputs are the contract's wire (the pair crops in place of the flow)."""
        flow = FlowSettings(backend="tf_tvl1", placement="model") if flow_in_model else FlowSettings()
        return Preprocessing(num_frames=self.pairs + 1, crop_size=self.crop, channels=self.channels, flow=flow)

    def model_config(self, **overrides) -> motion_hmr.ModelConfig:
        return motion_hmr.ModelConfig(architecture=self.architecture, **dict(self.model_overrides), **overrides)

    def to_json(self) -> dict:
        return {"clips": self.clips, "pairs": self.pairs, "crop": self.crop, "architecture": self.architecture,
                "channels": list(self.channels.names), "model_config": self.model_config().to_json(),
                "crops_per_step": self.clips * self.pairs, "inference_frames_per_batch": self.clips * (self.pairs + 1)}


# Paper §4 / Table 3: 31-frame clips (30 pairs), batch 3; App. A: 224-px crops; App. B: ResNet-50.
FULL = Size(clips=3, pairs=30, crop=224, architecture="resnet50")
# The smoke-test size: the same code path with `trunk.ARCHITECTURES["resnet_tiny"]` and small layers.
SMALL = Size(clips=1, pairs=3, crop=64, architecture="resnet_tiny",
             model_overrides=(("lstm_units", 16), ("head_units", 16), ("regressor_units", 16)))
MATMUL_N = {"full": 4096, "small": 512}  # square float32 matmul: 2 n^3 FLOPs
MATMUL_REPEATS = 4
# The bf16 accuracy check: the full architecture on one clip of 4 pairs, and Adam steps fitting that batch.
ACCURACY = {"full": (dataclasses.replace(FULL, clips=1, pairs=4), 60), "small": (SMALL, 5)}


def learning_rate():
    """The training loop's Adam learning rate (`loop.learning_rate_schedule`, gin/base.gin's 1e-4)."""
    return loop.learning_rate_schedule()


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way of running the same step. `env` is set before TensorFlow is imported in the variant's process."""
    name: str
    description: str
    xla_trunk: bool = False  # the ResNet trunk's forward (and its gradient) under tf.function(jit_compile=True)
    policy: str = "float32"  # a Keras dtype policy
    intra_threads: int = 0  # 0: TensorFlow's default (all logical CPUs)
    inter_threads: int = 0
    strategy: str = "mirrored"  # as loop.make_strategy: "mirrored" or "default"
    env: tuple = ()  # (name, value) pairs
    grappler: tuple = ()  # (option, value) pairs for tf.config.optimizer.set_experimental_options
    fused_batch_norm: bool = False  # ModelConfig(fused_batch_norm=True): the trunk's BN as one FusedBatchNormV3 op
    alters_float32_matmul: bool = False  # its settings may run the float32 reference matmul itself in bf16
    flow_in_model: bool = False  # the model computes the flow (TF TV-L1, XLA) from the pair crops it is sent

    def process_safe(self) -> bool:
        """Whether it can run in an already started TensorFlow process (no thread or environment settings)."""
        return not (self.env or self.intra_threads or self.inter_threads or self.grappler)


VARIANTS = {v.name: v for v in (
    Variant("baseline", "the training loop's step as it is: float32, MirroredStrategy, default threads"),
    Variant("flow_in_model", "as baseline with the flow computed in the model: its frozen first layer runs TF TV-L1 "
            "(XLA) on the pair crops the pipeline sends (FlowSettings.placement 'model'; mhr_tf.model.flow_input)",
            flow_in_model=True),
    Variant("bf16", "keras mixed_bfloat16 policy (AVX512_BF16 via oneDNN); train(mixed_precision=True)",
            policy="mixed_bfloat16"),
    Variant("fused_bn", "BatchNormalization as one FusedBatchNormV3 op (and one gradient op)",
            fused_batch_norm=True),
    Variant("bf16_fused_bn", "mixed_bfloat16 and fused_bn", policy="mixed_bfloat16", fused_batch_norm=True),
    Variant("xla_trunk", "the ResNet trunk's forward and backward under tf.function(jit_compile=True)",
            xla_trunk=True),
    Variant("bf16_xla_trunk", "mixed_bfloat16 and xla_trunk", policy="mixed_bfloat16", xla_trunk=True),
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
)}
SMALL_VARIANTS = ("baseline",)


def configure(variant: Variant) -> None:
    """The variant's process-wide settings (before any op runs; its `env` was set when the process started)."""
    if variant.intra_threads:
        tf.config.threading.set_intra_op_parallelism_threads(variant.intra_threads)
    if variant.inter_threads:
        tf.config.threading.set_inter_op_parallelism_threads(variant.inter_threads)
    if variant.grappler:
        tf.config.optimizer.set_experimental_options(dict(variant.grappler))
    keras.mixed_precision.set_global_policy(variant.policy)


# ---- the batch ------------------------------------------------------------------------------------------------------

def random_inputs(size: Size, rng: np.random.Generator, flow_in_model: bool = False) -> np.ndarray:
    """Inputs `[B, P, S, S, W]` float32 that look like the pipeline's, wire group by group (`flow_in_model`: the
    pair crops in place of the flow): smooth images in [-1, 1], the pair's second one moved by a few pixels, smooth
    flow through `flow.flow_channels` (/20 and magnitude), Gaussian keypoint heatmaps through
    `keypoints.gaussian_heatmaps` (90% of the joints visible), no total occlusion."""
    pre = size.preprocessing(flow_in_model)
    n, s = size.clips * size.pairs, size.crop

    def smooth(channels: int, scale: float, grid: int = 4):  # a random field, bilinearly upsampled
        coarse = rng.normal(0.0, scale, (n, grid, grid, channels)).astype(np.float32)
        return tf.image.resize(coarse, (s, s), method="bilinear")

    groups = {
        "rgb": lambda: tf.tanh(smooth(3, 1.0, grid=8)),
        "flow": lambda: flow.flow_channels(smooth(2, 3.0) + rng.normal(0.0, 5.0, (n, 1, 1, 2)).astype(np.float32),
                                           pre.flow.divisor),
        "heatmaps": lambda: keypoints.gaussian_heatmaps(
            tf.constant(np.clip(rng.normal(s / 2, s / 5, (n, len(joint_sets.HEATMAP_12), 2)), 0, s - 1),
                        tf.float32),
            tf.constant(rng.random((n, len(joint_sets.HEATMAP_12))) < 0.9), s, pre.sigma_px),
        "occlusion": lambda: tf.zeros((n, s, s, 1)),
        "pairs": lambda: (lambda first: tf.concat([first, tf.roll(first, shift=(2, -3), axis=(1, 2))], axis=-1))(
            tf.tanh(smooth(3, 1.0, grid=8))),
    }
    crops = tf.concat([groups[name]() for name in pre.wire_names], axis=-1)
    return np.asarray(crops, np.float32).reshape(size.clips, size.pairs, s, s, -1)


def random_batch(size: Size, seed: int = 0, flow_in_model: bool = False) -> tuple[dict, dict]:
    """Random features and labels with the batch contract's keys, shapes, dtypes and ranges
    (`pipeline.labels_of` plus the stream bookkeeping `make_dataset` adds); `flow_in_model`: the inputs are the
    wire of a contract with the flow in the model."""
    rng = np.random.default_rng(seed)
    b, p = size.clips, size.pairs
    lsp, smpl24 = len(joint_sets.LSP_14), len(joint_sets.SMPL_24)

    def f32(x):
        return tf.constant(np.asarray(x, np.float32))

    inputs = random_inputs(size, rng, flow_in_model)  # [B, P, S, S, W]
    body = rng.normal(0.0, 0.3, (b, p + 1, smpl24, 3)) + np.array([0.0, 0.0, 5.0])  # metres, ~5 m from the camera
    lsp3d = rng.normal(0.0, 0.3, (b, p + 1, lsp, 3)) + np.array([0.0, 0.0, 5.0])
    points = rng.uniform(-1.0, 1.0, (b, p + 1, lsp, 2))  # normalized crop coordinates
    valid = (rng.random((b, p + 1, lsp)) < 0.9).astype(np.float32)
    pose = rng.normal(0.0, 0.2, (b, p + 1, 72))
    labels = {
        "joints3d_current": f32(lsp3d[:, :-1]), "joints3d_future": f32(lsp3d[:, 1:]),
        "smpl_joints3d_current": f32(body[:, :-1]), "smpl_joints3d_future": f32(body[:, 1:]),
        "keypoints2d_current": f32(points[:, :-1]), "keypoints2d_future": f32(points[:, 1:]),
        "keypoints2d_valid_current": f32(valid[:, :-1]), "keypoints2d_valid_future": f32(valid[:, 1:]),
        "pose_current": f32(pose[:, :-1]), "pose_future": f32(pose[:, 1:]),
        "betas": f32(rng.normal(0.0, 1.0, (b, 10))), "occluded": f32(np.zeros((b, p + 1))),
        "occluded_by_slic": f32(np.zeros((b, p + 1))), "domain": tf.zeros([b], tf.int32),
        "index": tf.range(b, dtype=tf.int64), "stream": tf.zeros([b], tf.int64),
        "rejected": tf.zeros([b, 3], tf.int64),
    }
    return {"inputs": f32(inputs)}, labels


# ---- the step under test --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class StepUnderTest:
    """The loop's step on a model built as the loop builds it, with the batch it runs on."""
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    strategy: tf.distribute.Strategy
    step: object  # make_train_step's tf.function: (features, labels) -> (logged, last_example)
    features: dict
    labels: dict
    pre: Preprocessing


def compile_trunk(model: keras.Model) -> None:
    """XLA for the ResNet trunk only (its gradient is compiled with it); the BiLSTM's While loop cannot cross an XLA
    boundary in gradients."""
    pair_trunk = model.get_layer("trunk")
    pair_trunk.call = tf.function(pair_trunk.call, jit_compile=True)


def make_strategy(variant: Variant) -> tf.distribute.Strategy:
    return tf.distribute.MirroredStrategy() if variant.strategy == "mirrored" else tf.distribute.get_strategy()


def prepare(variant: Variant, size: Size, seed: int = 0, strategy: tf.distribute.Strategy | None = None
            ) -> StepUnderTest:
    """The model (`ModelConfig.build`, seeded like `loop.train`), Adam at the loop's rate and `make_train_step`."""
    strategy = strategy or make_strategy(variant)
    pre = size.preprocessing(variant.flow_in_model)
    features, labels = random_batch(size, seed, variant.flow_in_model)
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = size.model_config(fused_batch_norm=variant.fused_batch_norm).build(
            pre.crop_size, pre.channels.names, num_pairs=pre.num_pairs, pretrained=False, flow=pre.flow)
        optimizer = keras.optimizers.Adam(learning_rate())
    if variant.xla_trunk:
        compile_trunk(model)
    step = make_train_step(model, optimizer, strategy, global_batch=size.clips)
    return StepUnderTest(model, optimizer, strategy, step, features, labels, pre)


def trainable_values(model: keras.Model) -> list[np.ndarray]:
    return [np.array(v.numpy(), np.float64) for v in model.trainable_variables]


def first_step(under_test: StepUnderTest) -> dict:
    """Runs the first step (tracing included) and says what it did: its wall seconds, its logged values and how it
    changed the trainable weights."""
    before = trainable_values(under_test.model)
    start = time.perf_counter()
    logged, _ = under_test.step(under_test.features, under_test.labels)
    seconds = time.perf_counter() - start
    delta = np.concatenate([np.ravel(a - b) for a, b in zip(trainable_values(under_test.model), before)])
    return {"seconds": seconds, "logged": {k: float(v) for k, v in logged.items()},
            "weight_delta_l1": float(np.abs(delta).sum()), "weight_delta_max_abs": float(np.abs(delta).max()),
            "weights_changed_fraction": float(np.mean(delta != 0.0)), "trainable_weights": int(delta.size)}


def servable(model: keras.Model, size: Size, variant: Variant):
    """The serving function (`export.Servable`) of a with-vertices copy of `model`, as exports rebuild it."""
    from mhr_tf import export
    pre = size.preprocessing(variant.flow_in_model)
    serving = size.model_config(fused_batch_norm=variant.fused_batch_norm).build(
        pre.crop_size, pre.channels.names, num_pairs=pre.num_pairs, with_vertices=True, pretrained=False,
        flow=pre.flow)
    serving.set_weights(model.get_weights())
    if variant.xla_trunk:
        compile_trunk(serving)
    return export.Servable(serving, export.input_spec(pre)).serve


# ---- FLOPs and the machine's matmul rate ---------------------------------------------------------------------------

def profiler_flops(concrete_function) -> float:
    """FLOPs of one call of a traced function's top-level graph, by TensorFlow's profiler rules."""
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


def count_flops(model, size: Size, train_step, forward) -> dict:
    """The training step's and the serving function's FLOPs: the profiler on their traced (float32, not XLA) graphs
    (`forward` None: not counted), plus the BiLSTM analytically."""
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
        channels = size.channels.count
        per_crop = resnet50_forward_flops(size.crop, channels)
        result["analytic_resnet50_forward_gflop_per_crop"] = per_crop / 1e9
        # Backward: the input and the weight gradients, each a convolution as costly as the forward one, except
        # conv1's input gradient (its input is data).
        conv1 = 2 * (size.crop // 2) ** 2 * 49 * channels * 64
        result["analytic_resnet50_train_gflop"] = size.clips * size.pairs * (3 * per_crop - conv1) / 1e9
    return result


def matmul_rate(n: int, repeats: int, dtype: str = "float32") -> dict:
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
        wall, cpu = time.perf_counter(), common.cpu_s()
        _block(fn())
        times.append({"wall": time.perf_counter() - wall, "cpu": common.cpu_s() - cpu})
    return times


def _block(result) -> None:
    for value in tf.nest.flatten(result):
        np.asarray(value)


# ---- one variant, in its own process ------------------------------------------------------------------------------

def run_variant(variant: Variant, size: Size, mode: str, warmup: int, repeats: int, infer: bool,
                count: bool) -> dict:
    """Everything measured for one variant, in this (fresh) process; `count`: also count the FLOPs."""
    configure(variant)
    matmul_n = MATMUL_N[mode]
    row = {"variant": variant.name, "description": variant.description,
           "settings": {k: v for k, v in dataclasses.asdict(variant).items() if k not in ("name", "description")},
           "load_average_1min_before": os.getloadavg()[0]}
    matmul = [matmul_rate(matmul_n, MATMUL_REPEATS)]
    under_test = prepare(variant, size)
    first = first_step(under_test)
    row["first_step_s"] = first.pop("seconds")  # tracing (and XLA compilation) and the first run
    row["first_step"] = first
    times = timed(lambda: under_test.step(under_test.features, under_test.labels), warmup, repeats)
    best = min(times, key=lambda t: t["wall"])
    row.update(step_s_best=best["wall"], step_s_median=statistics.median(t["wall"] for t in times),
               step_cpu_s_best=min(t["cpu"] for t in times), step_times=times)
    row["wire_channels"] = int(under_test.features["inputs"].shape[-1])
    if variant.flow_in_model:  # the flow layer alone on the step's batch: its share of the step
        layer = under_test.model.get_layer("flow")
        flow_times = timed(lambda: layer(under_test.features["inputs"]), 1, repeats)
        row.update(flow_layer_s_best=min(t["wall"] for t in flow_times),
                   flow_layer_cpu_s_best=min(t["cpu"] for t in flow_times),
                   flow_layer_pairs=size.clips * size.pairs)
    matmul.append(matmul_rate(matmul_n, MATMUL_REPEATS))

    serve = None
    if infer:
        serve = servable(under_test.model, size, variant)
        inputs = under_test.features["inputs"]
        try:
            infer_times = timed(lambda: serve(inputs), 1, repeats)
        except tf.errors.OpError as error:  # keep the training numbers when only inference cannot run so
            row["inference_error"] = str(error).strip().splitlines()[0]
        else:
            infer_best = min(t["wall"] for t in infer_times)
            row.update(inference_s_best=infer_best,
                       inference_frames_per_s=size.clips * (size.pairs + 1) / infer_best)
    bf16 = matmul_rate(matmul_n, MATMUL_REPEATS, "bfloat16")  # the ceiling of the bf16 variants
    row.update(matmul_bf16_gflops=bf16["gflops"], matmul_bf16_gflops_per_cpu_s=bf16["gflops_per_cpu_s"])
    row.update(matmul_gflops=max(m["gflops"] for m in matmul),
               matmul_gflops_per_cpu_s=max(m["gflops_per_cpu_s"] for m in matmul), matmul_runs=matmul,
               load_average_1min_after=os.getloadavg()[0])
    if count:  # the FLOPs are the model's, whatever runs it: counted on float32, non-XLA graphs
        row["flops"] = count_flops(under_test.model, size,
                                   under_test.step.get_concrete_function(under_test.features, under_test.labels),
                                   # the serving function traced at this batch's shape (its signature's batch
                                   # dimension is None, which the profiler cannot count)
                                   tf.function(serve.python_function).get_concrete_function(
                                       under_test.features["inputs"]) if serve is not None else None)
    return row


# ---- the driver: one process per variant, then the table and the JSON --------------------------------------------

def _previous(out, mode: str, names) -> dict:
    """From the report at `out` (if it is of `mode`): the rows of the variants not in `names`, and its bf16 check."""
    try:
        previous = json.loads(Path(out).read_text())
    except (OSError, ValueError):
        return {}
    if previous.get("mode") != mode:
        return {}
    kept = {"variants": [dict(r, kept_from_an_earlier_run=True) for r in previous.get("variants", [])
                         if r.get("variant") not in names]}
    if "bf16_accuracy" in previous:
        kept["bf16_accuracy"] = previous["bf16_accuracy"]
    return kept


def worker(argv: list[str]) -> int:
    """Inside a fresh process (`run_in_subprocess`): `task settings_json out_json`."""
    task, settings, out = argv[0], json.loads(argv[1]), Path(argv[2])
    mode = "small" if settings["small"] else "full"
    if task == "accuracy":
        from mhr_tf.bench import model_accuracy
        answer = model_accuracy.bf16_accuracy(*ACCURACY[mode])
    else:
        answer = run_variant(VARIANTS[task], SMALL if settings["small"] else FULL, mode, settings["warmup"],
                             settings["repeats"], settings["inference"], settings["count_flops"])
    out.write_text(json.dumps(answer))
    return 0


def run_in_subprocess(task: str, settings: dict, env: dict) -> dict:
    """Runs `worker(task ...)` in a fresh Python with `env` added; returns its answer or {"error": ...}."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "answer.json"
        code = "import sys; from mhr_tf.bench import model; sys.exit(model.worker(sys.argv[1:]))"
        completed = subprocess.run([sys.executable, "-c", code, task, json.dumps(settings), str(out)],
                                   env={**os.environ, **env}, capture_output=True, text=True)
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
        if row.get("matmul_bf16_gflops"):  # rows kept from an older report may not have it
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


def run(out=None, small: bool = False, variants: tuple[str, ...] | None = None, warmup: int = 0,
        repeats: int | None = None, inference: bool = True, accuracy: str = "auto", merge: bool = False) -> dict:
    """Every variant (the baseline first: its process counts the FLOPs), then the bf16 accuracy check (`accuracy`
    "yes", "no", or "auto": with a bf16 variant, not when `small`); prints the table and writes the report to `out`
    (JSON; after every variant, so a long run that is stopped keeps what it measured). `merge`: keep the rows (and
    the bf16 check) of the variants not run now from the report already at `out` (same mode), each with the
    machine's state when it was measured."""
    mode = "small" if small else "full"
    size = SMALL if small else FULL
    repeats = repeats or (2 if small else 3)
    names = list(variants or (SMALL_VARIANTS if small else VARIANTS))
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"model benchmark: unknown variants {unknown}; expected names from {list(VARIANTS)}")
    if "baseline" not in names:
        names.insert(0, "baseline")
    check = accuracy == "yes" or (accuracy == "auto" and not small
                                  and any(VARIANTS[n].policy != "float32" for n in names))
    settings = {"small": small, "warmup": warmup, "repeats": repeats, "inference": inference}
    report = {
        "benchmark": "Motion HMR training step: mhr_tf.training.step.make_train_step (mhr_tf.bench.model)",
        "mode": mode, "size": size.to_json(), "machine": common.machine(),
        "gpus": [device.name for device in tf.config.list_physical_devices("GPU")],  # none: every figure is CPU
        "note": "The CPU is shared with other users. Times are the best of several steps; each variant's float32 "
                "matmul rate is measured in its own process right before and after its steps (% of matmul), and "
                "per CPU-second the process got (% of matmul, CPU time), which the sharing affects less.",
        "matmul": {"n": MATMUL_N[mode], "dtype": "float32", "repeats": MATMUL_REPEATS},
        "flops": None, "variants": [],
    }
    rows = report["variants"]
    kept = _previous(out, mode, names) if merge and out is not None else {}
    for key in ("bf16_accuracy",):
        if key in kept and not check:
            report[key] = kept[key]
    for name in names:
        print(f"[{time.strftime('%H:%M:%S')}] {name} (load {os.getloadavg()[0]:.1f}) ...", flush=True)
        variant, count = VARIANTS[name], name == "baseline"
        if len(names) == 1 and variant.process_safe():  # e.g. the smoke run: no second TensorFlow start-up
            row = run_variant(variant, size, mode, warmup, repeats, inference, count)
        else:
            row = {"variant": name, "description": variant.description,
                   **run_in_subprocess(name, {**settings, "count_flops": count}, dict(variant.env))}
        report["flops"] = report["flops"] or row.pop("flops", None)
        rows.append(row)
        report["matmul"].update(summarise(rows, report["flops"]))
        if out is not None:
            common.write_json(out, report)
    if kept.get("variants"):
        rows.extend(kept["variants"])
        rows.sort(key=lambda r: list(VARIANTS).index(r["variant"]) if r["variant"] in VARIANTS else len(VARIANTS))
        report["matmul"].update(summarise(rows, report["flops"]))
    if check:
        print(f"[{time.strftime('%H:%M:%S')}] bf16 accuracy check ...", flush=True)
        report["bf16_accuracy"] = run_in_subprocess("accuracy", settings, {})
    report["machine"]["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print_table(rows, report["matmul"])
    if "bf16_accuracy" in report:
        from mhr_tf.bench import model_accuracy
        model_accuracy.print_accuracy(report["bf16_accuracy"])
    if out is not None:
        print(f"wrote {common.write_json(out, report)}")
    return report
