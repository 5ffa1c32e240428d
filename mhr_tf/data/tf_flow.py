"""TV-L1 optical flow in TensorFlow ops only: runs inside tf.data service workers and on an accelerator.

The method is Zach, Pock & Bischof's duality-based TV-L1 ("A Duality Based Approach for Realtime TV-L1 Optical
Flow", DAGM 2007) in the form OpenCV's `cv2.optflow.DualTVL1OpticalFlow` implements (after Sánchez, Meinhardt-Llopis
& Facciolo, IPOL 2013). The paper computes camera motion with it (App. A, "TVL1 [90]") and feeds the network
FlowNet's flow (§3.2), for which this classical method is the TF-only stand-in: a coarse-to-fine pyramid; at each level
a few warps of the second image towards the first by the current flow (linearising the brightness constancy there);
after each warp, alternating (a) the pointwise thresholding step that solves the L1 data term for `v` given `u`,
and (b) dual (Chambolle) iterations of the ROF/TV problem for `u` given `v`; a 5x5 median filter of the flow before
each run of inner iterations. Parameters keep OpenCV's names: tau, lambda_, theta, nscales, warps, epsilon,
inner_iterations, outer_iterations, scale_step, median_filtering (OpenCV's `gamma`, an illumination term, is 0 there
by default and not implemented here).

Deliberate differences from OpenCV, each for the TF setting:
- Warping is bilinear (one batched gather of the image and its two derivatives), not bicubic.
- A pixel whose warped position falls outside the second image gets no data term (its warped derivatives are 0), as
  OpenCV's zero-bordered remap effectively does, so points leaving the crop are filled in by the TV smoothness.
- Loop counts are fixed (tf.while_loop) and `epsilon` defaults to 0. With epsilon > 0 an example stops iterating
  as in OpenCV (sum of squared flow updates below epsilon^2 * pixels), but per example: a converged example's state
  is frozen while the rest of the batch iterates, so what else is in its batch does not change its flow.
  (Under XLA the float rounding may differ with the batch size, ~1e-5 px on textured images.)

Everything is batched: `tvl1_flow(image1, image2)` takes `[N, H, W, 3]` RGB, `[N, H, W, 1]` or `[N, H, W]` grey,
float 0..255 (the intensity range `lambda_` is tuned for), and returns `[N, H, W, 2]` (x, y) pixels from image1 to
image2: image1 at p looks like image2 at p + flow(p). H and W must be static (the pyramid's level sizes are Python
ints); N may be dynamic. Use `TVL1Flow` (a tf.function, traced once per input shape) from eager code, plain
`tvl1_flow` inside a graph being built (Dataset.map, a Keras layer), or `TVL1FlowLayer` as a frozen first layer.
"""
from __future__ import annotations

import dataclasses
import functools

import keras
import numpy as np
import tensorflow as tf

# The name to give this implementation among flow.py's backends ('dis', 'tvl1', 'saved_model:<dir>').
BACKEND_NAME = "tf_tvl1"
# ITU-R BT.601 luma weights: what cv2.COLOR_RGB2GRAY uses, so grey images match the OpenCV backends'.
GRAY_WEIGHTS_RGB = (0.299, 0.587, 0.114)
# OpenCV drops a pyramid level narrower or shorter than this (tvl1flow.cpp, "create the scales").
MIN_LEVEL_SIZE_PX = 16
# Floor of |grad I1|^2 in the thresholding step's division (OpenCV: no data step below float epsilon).
_GRAD_FLOOR = float(np.finfo(np.float32).eps)
# OpenCV's medianBlur kernel size for the flow; 1 or 0 switches the median filter off.
_MEDIAN_OFF = (0, 1)


@dataclasses.dataclass(frozen=True)
class TVL1Params:
    """TV-L1 settings, named as OpenCV's DualTVL1OpticalFlow's (OpenCV's defaults in brackets).

    The defaults are tuned for 224x224 person crops on a CPU budget with scripts/benchmark_flow.py (a sweep on
    simulator-like pairs with known motion, mean |flow| ~7 px, seeds 1-2; benchmarks/flow.json reports the held-out
    seed 0): 0.09-0.11 CPU s per pair on one core with XLA (~3 s per 30-pair clip; ~0.56 s per pair without XLA) for
    an end-point error of 0.69 px, where OpenCV's TV-L1 at its defaults has 1.48 px at 1.7 s per pair. (OpenCV's DIS
    "medium" scores 0.64 px at 6 ms: on a CPU that is the cheaper flow; this one is for graphs with no Python.)
    - scale_step 0.5, nscales 4: a 224-px crop's pyramid is 224/112/56/28 px, so motions of ~20 px are found; OpenCV's
      0.8 x 5 levels reaches only 0.41x: 1.89 px here, at twice the cost.
    - lambda_ 0.3: sharper motion boundaries (the person against the background) than 0.15 (0.76 px); 0.5 alike.
    - warps 4 x outer 2 x inner 10: halving any of them costs 0.08-0.19 px; doubling buys ~0.03 px for +50-70%.
    - epsilon 0: fixed counts. OpenCV's 0.01 early stop never fired at these counts in the sweep, and its per-example
      test costs ~65% more CPU time under XLA. Set it to stop converged examples early with larger counts.
    - median_filtering 5: 0.03-0.05 px better than none, for ~30% of the time (set 1 to switch it off).
    """
    tau: float = 0.25              # [0.25] time step of the dual (ROF) iterations; stable for tau <= 0.25
    lambda_: float = 0.3           # [0.15] weight of the L1 data term, for intensities 0..255; larger = less smooth
    theta: float = 0.3             # [0.3] coupling of u and v (the quadratic relaxation's 1 / (2 theta))
    nscales: int = 4               # [5] pyramid levels (fewer if a level would be under 16 px)
    warps: int = 4                 # [5] warps per level
    epsilon: float = 0.0           # [0.01] stop an example once its RMS flow update per pixel is below this (px)
    inner_iterations: int = 10     # [30] thresholding + dual steps per outer iteration
    outer_iterations: int = 2      # [10] median filter + inner iterations, per warp
    scale_step: float = 0.5        # [0.8] size ratio of consecutive pyramid levels
    median_filtering: int = 5      # [5] median filter size for the flow (1 or 0: off)

    def __post_init__(self):
        checks = {"tau": 0 < self.tau <= 0.25, "lambda_": self.lambda_ > 0, "theta": self.theta > 0,
                  "nscales": self.nscales >= 1, "warps": self.warps >= 1, "epsilon": self.epsilon >= 0,
                  "inner_iterations": self.inner_iterations >= 1, "outer_iterations": self.outer_iterations >= 1,
                  "scale_step": 0 < self.scale_step < 1,
                  "median_filtering": self.median_filtering in _MEDIAN_OFF or (self.median_filtering >= 3
                                                                               and self.median_filtering % 2 == 1)}
        expected = {"tau": "in (0, 0.25]", "lambda_": "> 0", "theta": "> 0", "nscales": ">= 1", "warps": ">= 1",
                    "epsilon": ">= 0", "inner_iterations": ">= 1", "outer_iterations": ">= 1",
                    "scale_step": "in (0, 1)", "median_filtering": "0, 1 or an odd size >= 3"}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"TVL1Params: {name}={getattr(self, name)!r}, expected {expected[name]}")

    def level_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """(h, w) of each pyramid level, finest first, as OpenCV sizes them (each level resized from the one above,
        rounded; a level under 16 px ends the pyramid)."""
        sizes = [(int(height), int(width))]
        for _ in range(1, self.nscales):
            h, w = sizes[-1]
            h, w = int(round(h * self.scale_step)), int(round(w * self.scale_step))
            if h < MIN_LEVEL_SIZE_PX or w < MIN_LEVEL_SIZE_PX:
                break
            sizes.append((h, w))
        return sizes


# ---- Image helpers -----------------------------------------------------------------------------------------------

def to_gray(images: tf.Tensor, name: str = "images") -> tf.Tensor:
    """`[N, H, W, 3]` RGB, `[N, H, W, 1]` or `[N, H, W]` grey, 0..255 -> `[N, H, W]` float32 grey 0..255."""
    images = tf.convert_to_tensor(images)
    if images.shape.rank == 4 and images.shape[-1] in (1, 3):
        images = tf.cast(images, tf.float32)
        if images.shape[-1] == 1:
            return images[..., 0]
        return tf.tensordot(images, tf.constant(GRAY_WEIGHTS_RGB, tf.float32), axes=[[3], [0]])
    if images.shape.rank == 3:
        return tf.cast(images, tf.float32)
    raise ValueError(f"tvl1_flow: {name} has shape {images.shape}, expected [N, H, W, 3] RGB, [N, H, W, 1] or "
                     f"[N, H, W] grey")


def _replicate_pad(x: tf.Tensor, radius: int) -> tf.Tensor:
    """Pad axes 1 and 2 of `[N, h, w, ...]` by `radius` repeating the edge (OpenCV's BORDER_REPLICATE)."""
    for axis in (1, 2):
        size = x.shape[axis]
        index = np.clip(np.arange(-radius, size + radius), 0, size - 1)
        x = tf.gather(x, index, axis=axis)
    return x


def centered_gradient(images: tf.Tensor) -> tf.Tensor:
    """`[N, h, w]` -> `[N, h, w, 2]` (d/dx, d/dy): central differences, halved one-sided ones at the border."""
    padded = _replicate_pad(images, 1)
    dx = 0.5 * (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2])
    dy = 0.5 * (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1])
    return tf.stack([dx, dy], axis=-1)


def forward_gradient(u: tf.Tensor) -> tf.Tensor:
    """`[N, h, w, K]` -> `[N, h, w, K, 2]` forward differences (x, y), 0 on the last column/row (Neumann)."""
    dx = tf.pad(u[:, :, 1:] - u[:, :, :-1], [[0, 0], [0, 0], [0, 1], [0, 0]])
    dy = tf.pad(u[:, 1:] - u[:, :-1], [[0, 0], [0, 1], [0, 0], [0, 0]])
    return tf.stack([dx, dy], axis=-1)


def divergence(p: tf.Tensor) -> tf.Tensor:
    """`[N, h, w, K, 2]` -> `[N, h, w, K]` backward-difference divergence: minus the adjoint of `forward_gradient`."""
    px, py = p[..., 0], p[..., 1]
    return (px - tf.pad(px[:, :, :-1], [[0, 0], [0, 0], [1, 0], [0, 0]])
            + py - tf.pad(py[:, :-1], [[0, 0], [1, 0], [0, 0], [0, 0]]))


def _batcher_comparators(n: int) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sorting network for `n` inputs: compare-exchange pairs (low index gets the min).

    Built for the next power of two; comparators touching a missing input are dropped (a missing input acts as
    +inf, which never moves)."""
    size = 1
    while size < n:
        size *= 2
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return [(a, b) for a, b in pairs if b < n]


@functools.lru_cache(maxsize=None)
def median_network(n: int) -> tuple[tuple[int, int], ...]:
    """The comparators of `n`'s sorting network that the middle output depends on (n odd), in order."""
    needed, kept = {n // 2}, []
    for a, b in reversed(_batcher_comparators(n)):
        if a in needed or b in needed:
            kept.append((a, b))
            needed |= {a, b}
    return tuple(reversed(kept))


def median_filter(u: tf.Tensor, size: int) -> tf.Tensor:
    """`[N, h, w, K]` -> the same, each channel median-filtered over `size` x `size` (edges replicated).

    A pruned sorting network of min/max ops over the window's shifted copies (113 compare-exchanges for 5x5):
    elementwise, so it runs fast on CPU, fuses under XLA and is ~40x quicker here than top_k over patches."""
    radius = size // 2
    height, width = u.shape[1:3]
    padded = _replicate_pad(u, radius)
    values = [padded[:, dy:dy + height, dx:dx + width] for dy in range(size) for dx in range(size)]
    for a, b in median_network(size * size):
        values[a], values[b] = tf.minimum(values[a], values[b]), tf.maximum(values[a], values[b])
    return values[size * size // 2]


def bilinear_sample(images: tf.Tensor, points: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Sample `[N, h, w, C]` at `points` `[N, h, w, 2]` (x, y) pixels, bilinearly with edges replicated.

    Returns `(samples [N, h, w, C], inside [N, h, w] bool)`: whether each point lies within the image.
    """
    height, width, channels = images.shape[1:]
    x, y = points[..., 0], points[..., 1]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    x = tf.clip_by_value(x, 0.0, width - 1.0)
    y = tf.clip_by_value(y, 0.0, height - 1.0)
    x0, y0 = tf.floor(x), tf.floor(y)
    wx, wy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    x1, y1 = tf.minimum(x0 + 1, width - 1), tf.minimum(y0 + 1, height - 1)
    flat = tf.reshape(images, [-1, height * width, channels])

    def at(yi, xi):
        return tf.reshape(tf.gather(flat, tf.reshape(yi * width + xi, [-1, height * width]), batch_dims=1),
                          [-1, height, width, channels])

    top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    return top * (1 - wy) + bottom * wy, inside


def _pixel_grid(height: int, width: int) -> tf.Tensor:
    """`[1, h, w, 2]` (x, y) pixel coordinates."""
    x, y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return tf.constant(np.stack([x, y], axis=-1)[None])


def resize_flow(u: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """`[N, h, w, 2]` flow -> `[N, H, W, 2]`, bilinearly resized and rescaled to the new level's pixels."""
    height, width = u.shape[1:3]
    ratio = tf.constant([size[1] / width, size[0] / height], tf.float32)
    return tf.image.resize(u, size, method="bilinear") * ratio


# ---- One pyramid level -------------------------------------------------------------------------------------------

def _solve_level(gray1: tf.Tensor, gray2: tf.Tensor, u: tf.Tensor, params: TVL1Params) -> tf.Tensor:
    """TV-L1 at one level: `gray1, gray2 [N, h, w]`, initial flow `u [N, h, w, 2]` -> refined flow, same shape."""
    height, width = gray1.shape[1:3]
    lambda_theta = params.lambda_ * params.theta
    tau_theta = params.tau / params.theta
    # OpenCV's stopping test: sum over pixels of |u_new - u|^2 below epsilon^2 * pixels.
    stop_below = params.epsilon ** 2 * height * width
    grid = _pixel_grid(height, width)
    # The second image and its derivatives travel together through every warp: one gather for all three.
    image2_and_gradient = tf.concat([gray2[..., None], centered_gradient(gray2)], axis=-1)  # [N, h, w, 3]
    all_active = tf.ones_like(gray1[:, 0, 0], tf.bool)  # [N]

    def frozen_where(active, new, old):
        """`new` where the example is still iterating, `old` where it has converged (only with epsilon > 0)."""
        if stop_below == 0:
            return new
        return tf.where(active[(...,) + (None,) * (new.shape.rank - 1)], new, old)

    def warp(w, u, p):
        sampled, inside = bilinear_sample(image2_and_gradient, grid + u)
        warped2 = sampled[..., 0]                                         # I1(x + u0)
        grad2 = sampled[..., 1:] * tf.cast(inside, tf.float32)[..., None]  # no data term off the image
        grad2_sq = tf.reduce_sum(tf.square(grad2), axis=-1)               # |grad I1|^2
        rho_const = warped2 - tf.reduce_sum(grad2 * u, axis=-1) - gray1   # rho(u) = rho_const + grad . u
        safe_grad2_sq = tf.maximum(grad2_sq, _GRAD_FLOOR)

        def inner_step(i, active, u, p):
            # (a) Thresholding: v = argmin |v - u|^2 / (2 theta) + lambda |rho(v)|, pointwise. Its three cases
            # (rho < -lambda theta |grad|^2, rho > +..., else) are one clip of the step along grad I1.
            rho = rho_const + tf.reduce_sum(grad2 * u, axis=-1)
            step = tf.clip_by_value(-rho / safe_grad2_sq, -lambda_theta, lambda_theta)
            v = u + step[..., None] * grad2
            # (b) One dual (Chambolle) step of ROF: u = v + theta div p; p <- (p + tau/theta grad u) / (1 + ...).
            u_new = v + params.theta * divergence(p)
            grad_u = forward_gradient(u_new)                               # [N, h, w, 2, 2]
            norm = tf.sqrt(tf.reduce_sum(tf.square(grad_u), axis=-1, keepdims=True))
            p_new = (p + tau_theta * grad_u) / (1.0 + tau_theta * norm)
            if stop_below > 0:  # with epsilon = 0 the counts are fixed and there is no test to pay for
                change = tf.reduce_sum(tf.square(u_new - u), axis=[1, 2, 3])  # [N]
                active_new = active & (change > stop_below)
                return i + 1, active_new, frozen_where(active, u_new, u), frozen_where(active, p_new, p)
            return i + 1, active, u_new, p_new

        def outer_step(o, active, u, p):
            if params.median_filtering not in _MEDIAN_OFF:
                u = frozen_where(active, median_filter(u, params.median_filtering), u)
            _, active, u, p = tf.while_loop(
                lambda i, active, u, p: (i < params.inner_iterations) & tf.reduce_any(active),
                inner_step, (tf.constant(0), active, u, p))
            return o + 1, active, u, p

        # Every example starts each warp unconverged (OpenCV resets its error to +inf per warp).
        _, _, u, p = tf.while_loop(
            lambda o, active, u, p: (o < params.outer_iterations) & tf.reduce_any(active),
            outer_step, (tf.constant(0), all_active, u, p))
        return w + 1, u, p

    p = tf.stack([tf.zeros_like(u)] * 2, axis=-1)  # [N, h, w, 2, 2] dual variables, reset per level as in OpenCV
    _, u, _ = tf.while_loop(lambda w, u, p: w < params.warps, warp, (tf.constant(0), u, p))
    return u


# ---- Public API --------------------------------------------------------------------------------------------------

def tvl1_flow(image1: tf.Tensor, image2: tf.Tensor, params: TVL1Params = TVL1Params()) -> tf.Tensor:
    """TV-L1 flow `[N, H, W, 2]` float32, (x, y) pixels, from `image1` to `image2`.

    image1, image2: `[N, H, W, 3]` RGB, `[N, H, W, 1]` or `[N, H, W]` grey, 0..255 (any real or integer dtype),
    with static H and W. TF ops only: call inside tf.data or a Keras layer; use `TVL1Flow` from eager code.
    No gradient flows through (the iterations would otherwise all be recorded on a tape).
    """
    gray1 = tf.stop_gradient(to_gray(image1, "image1"))
    gray2 = tf.stop_gradient(to_gray(image2, "image2"))
    if not gray1.shape.is_compatible_with(gray2.shape):
        raise ValueError(f"tvl1_flow: image1 has shape {image1.shape} and image2 {image2.shape}, expected the same "
                         f"[N, H, W] size")
    height, width = gray1.shape[1:3]
    if height is None or width is None:
        raise ValueError(f"tvl1_flow: image1 has shape {image1.shape}, expected a static H and W (the pyramid's "
                         f"level sizes are fixed when the graph is built); set_shape or ensure_shape first")
    if height < 3 or width < 3:
        raise ValueError(f"tvl1_flow: image1 has shape {image1.shape}, expected H and W of at least 3 px")
    sizes = params.level_sizes(height, width)
    pyramid = [(gray1, gray2)]
    for size in sizes[1:]:  # each level from the one above, as OpenCV's cascade of INTER_LINEAR resizes
        pyramid.append(tuple(tf.image.resize(g[..., None], size, method="bilinear")[..., 0]
                             for g in pyramid[-1]))
    u = tf.stack([tf.zeros_like(pyramid[-1][0])] * 2, axis=-1)  # [N, h, w, 2] zero flow at the coarsest level
    for level in reversed(range(len(sizes))):
        if level < len(sizes) - 1:
            u = resize_flow(u, sizes[level])
        u = _solve_level(*pyramid[level], u, params)
    return tf.ensure_shape(u, gray1.shape.concatenate([2]))


class TVL1Flow:
    """`flow = TVL1Flow(); flow(image1, image2) -> [N, H, W, 2]`: `tvl1_flow` as a tf.function, traced once per
    input shape and dtype; keyword overrides set TVL1Params fields, e.g. `TVL1Flow(warps=2)`.

    `jit_compile=True` (default) compiles it with XLA, ~5x faster on CPU than TF's graph executor (the iterations
    are many small elementwise ops that XLA fuses) and the natural form on an accelerator. It also works inside
    `Dataset.map`: call the instance in the map function and tf.data runs the compiled function.
    """

    def __init__(self, params: TVL1Params | None = None, jit_compile: bool = True, **overrides):
        self.params = dataclasses.replace(params or TVL1Params(), **overrides)
        self.jit_compile = bool(jit_compile)
        # autograph off: the loops are explicit tf.while_loops, the Python ifs are on settings
        self._function = tf.function(functools.partial(tvl1_flow, params=self.params), jit_compile=self.jit_compile,
                                     autograph=False)

    def __call__(self, image1, image2) -> tf.Tensor:
        return self._function(tf.convert_to_tensor(image1), tf.convert_to_tensor(image2))


@keras.saving.register_keras_serializable(package="mhr_tf")
class TVL1FlowLayer(keras.layers.Layer):
    """Frozen TV-L1 flow as a model's first layer: `[image1, image2]`, each `[..., H, W, C]` (C = 3 RGB or 1 grey,
    0..255) -> `[..., H, W, 2]` (x, y) pixels. Leading dims (e.g. `[B, P]` pairs) are flattened into one batch.
    No weights, nothing trainable, no gradient. Arguments: TVL1Params' fields and `jit_compile` (see TVL1Flow)."""

    def __init__(self, tau: float = TVL1Params.tau, lambda_: float = TVL1Params.lambda_,
                 theta: float = TVL1Params.theta, nscales: int = TVL1Params.nscales, warps: int = TVL1Params.warps,
                 epsilon: float = TVL1Params.epsilon, inner_iterations: int = TVL1Params.inner_iterations,
                 outer_iterations: int = TVL1Params.outer_iterations, scale_step: float = TVL1Params.scale_step,
                 median_filtering: int = TVL1Params.median_filtering, jit_compile: bool = True, **kwargs):
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.flow = TVL1Flow(TVL1Params(tau=tau, lambda_=lambda_, theta=theta, nscales=nscales, warps=warps,
                                        epsilon=epsilon, inner_iterations=inner_iterations,
                                        outer_iterations=outer_iterations, scale_step=scale_step,
                                        median_filtering=median_filtering), jit_compile=jit_compile)

    def call(self, inputs):
        image1, image2 = (tf.convert_to_tensor(image) for image in inputs)
        if image1.shape.rank is None or image1.shape.rank < 4 or image1.shape[-3:] != image2.shape[-3:]:
            raise ValueError(f"{self.name}: images have shapes {image1.shape} and {image2.shape}, expected two "
                             f"[..., H, W, C] of the same frame size")
        frame_shape = image1.shape[-3:]
        flow = self.flow(tf.reshape(image1, [-1, *frame_shape]), tf.reshape(image2, [-1, *frame_shape]))
        return tf.reshape(flow, tf.concat([tf.shape(image1)[:-3], [frame_shape[0], frame_shape[1], 2]], axis=0))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (2,)

    def get_config(self):
        return {**super().get_config(), **dataclasses.asdict(self.flow.params), "jit_compile": self.flow.jit_compile}
