"""The per-pair ConvNet trunk of Motion HMR (paper §3.2, App. B): a ResNet applied to every paired box, average-pooled.

Input channels follow the batch contract, each group present per config, in this order: RGB 3, flow 3 (x / 20,
y / 20, magnitude), 12 keypoint heatmaps (`HEATMAP_12`), 1 total-occlusion indicator. conv1 is as wide as the
groups present. With ImageNet weights on disk (`load_pretrained`), every layer takes its pretrained weights; in conv1
the RGB and the flow channels both take the pretrained RGB filters (App. B: "we expand 2 channels to 3 ... and pass
this to the ResNet") and the heatmap and indicator channels keep their random initialisation (App. B: "extra weights
in conv1 are initialized randomly").
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import keras
import numpy as np
from keras import ops

from mhr_tf.data.preprocessing import CHANNEL_GROUPS, RGB_HALF_RANGE, group_slices
from mhr_tf.model import batch_norm

logger = logging.getLogger(__name__)

_GROUP_WIDTH = dict(CHANNEL_GROUPS)
# The groups whose conv1 filters come from the pretrained RGB filters (App. B); the others start random.
PRETRAINED_GROUPS = ("rgb", "flow")

# Bottleneck stages (filters of the bottleneck, number of blocks) of each trunk. "resnet50" is He et al. 2016's
# ResNet-50 (the paper's trunk, built by keras.applications); "resnet_tiny" keeps the same stem and block type with
# two one-block stages, for tests and the demo: 64 output features, a few MFLOP per 64-px crop after conv1.
ARCHITECTURES = {
    "resnet50": ((64, 3), (128, 4), (256, 6), (512, 3)),
    "resnet_tiny": ((8, 1), (16, 1)),
}
# keras.applications' ResNets expand each bottleneck stage's output 4x.
_BOTTLENECK_EXPANSION = 4
# The stem convolution whose input channels are widened; its name in every keras.applications ResNet.
CONV1_NAME = "conv1_conv"

# Keras' ImageNet ResNet-50 file (resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5) was converted from Caffe:
# conv1 expects BGR pixels in [0, 255] minus these per-channel means (keras.applications.resnet50.preprocess_input,
# mode "caffe"). Our RGB is in [-1, 1] (batch contract), so `load_pretrained` folds the conversion into conv1.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def channel_layout(channels) -> dict[str, slice]:
    """Where each input group sits along the channel axis, e.g. ("rgb", "heatmaps") -> {rgb: 0:3, heatmaps: 3:15}."""
    channels = tuple(channels)
    order = [name for name, _ in CHANNEL_GROUPS]
    unknown = [name for name in channels if name not in _GROUP_WIDTH]
    if unknown or not channels:
        raise ValueError(f"channels {channels}: expected a non-empty subset of {tuple(order)}")
    if list(channels) != [name for name in order if name in channels]:
        raise ValueError(f"channels {channels}: groups must be unique and in the batch contract's order {tuple(order)}")
    return group_slices(channels)


def num_channels(channels) -> int:
    """Input width C for the channel groups present."""
    return max(s.stop for s in channel_layout(channels).values())


def feature_dim(architecture: str) -> int:
    """Width of the pooled trunk feature (2048 for ResNet-50)."""
    return _stages(architecture)[-1][0] * _BOTTLENECK_EXPANSION


def _stages(architecture: str):
    if architecture not in ARCHITECTURES:
        raise ValueError(f"trunk architecture {architecture!r}: expected one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture]


def build_backbone(architecture: str, input_shape: tuple[int, int, int], fused_batch_norm: bool = False
                   ) -> keras.Model:
    """A keras.applications ResNet (no top, global average pooling, random weights): `[N, S, S, C] -> [N, D]`.

    `fused_batch_norm`: its BatchNormalization layers computed by TensorFlow's fused op (`batch_norm`; same weights
    and results, faster on CPU).
    """
    net = _keras_resnet(architecture, input_shape)
    return batch_norm.fuse_batch_norms(net) if fused_batch_norm else net


def _keras_resnet(architecture: str, input_shape: tuple[int, int, int]) -> keras.Model:
    stages = _stages(architecture)
    with warnings.catch_warnings():
        # keras.applications warns for inputs that are not 1 or 3 channels; ours are wider on purpose.
        warnings.filterwarnings("ignore", message=".*input channels.*")
        if architecture == "resnet50":
            return keras.applications.ResNet50(include_top=False, weights=None, input_shape=input_shape,
                                               pooling="avg", name=architecture)
        # Smaller trunks through the very builder ResNet50 is made of (same stem, same bottleneck blocks); Keras
        # exports ResNet50 but not that builder, hence keras.src.
        from keras.src.applications import resnet

        def stack_fn(x):
            for index, (filters, blocks) in enumerate(stages):
                x = resnet.stack_residual_blocks_v1(x, filters, blocks, stride1=1 if index == 0 else 2,
                                                    name=f"conv{index + 2}")
            return x

        return resnet.ResNet(stack_fn, preact=False, use_bias=True, include_top=False, weights=None,
                             input_shape=input_shape, pooling="avg", name=architecture)


@keras.saving.register_keras_serializable(package="mhr_tf")
class PairTrunk(keras.layers.Layer):
    """The ResNet applied to every paired box: inputs `[B, P, S, S, C]` -> features `[B, P, D]`.

    The P pairs are folded into the batch, so BatchNorm's statistics run over all B * P crops, as in a per-frame
    ConvNet (§3.2: "applies a CNN ... independently on each frame").
    """

    def __init__(self, crop_size: int, channels=("rgb",), architecture: str = "resnet50",
                 fused_batch_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.crop_size = int(crop_size)
        self.channels = tuple(channels)
        self.architecture = architecture
        self.fused_batch_norm = bool(fused_batch_norm)
        self.layout = channel_layout(self.channels)
        self.num_channels = num_channels(self.channels)
        self.feature_dim = feature_dim(architecture)
        self.backbone = build_backbone(architecture, (self.crop_size, self.crop_size, self.num_channels),
                                       self.fused_batch_norm)

    def build(self, input_shape):
        expected = (self.crop_size, self.crop_size, self.num_channels)
        if tuple(input_shape[2:]) != expected:
            raise ValueError(f"PairTrunk: inputs {tuple(input_shape)} — expected [B, P, {expected[0]}, "
                             f"{expected[1]}, {expected[2]}] for channels {self.channels}")
        super().build(input_shape)

    def call(self, inputs, training=None):
        shape = ops.shape(inputs)
        crops = ops.reshape(inputs, (-1, self.crop_size, self.crop_size, self.num_channels))  # [B*P, S, S, C]
        features = self.backbone(crops, training=training)  # [B*P, D]
        return ops.reshape(features, (shape[0], shape[1], self.feature_dim))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.feature_dim)

    def get_config(self):
        return {**super().get_config(), "crop_size": self.crop_size, "channels": list(self.channels),
                "architecture": self.architecture, "fused_batch_norm": self.fused_batch_norm}


def load_pretrained(trunk: PairTrunk, weights_path: str | Path | None, caffe_input: bool = True) -> bool:
    """Initialise `trunk` from an RGB (3-channel) weights file of the same architecture; False if there is none.

    `weights_path`: Keras' ImageNet file for ResNet-50 (`resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`, legacy
    HDF5) or any `.weights.h5` saved from `build_backbone(architecture, (S, S, 3))`. Missing (None or no such file):
    logs that training starts from scratch and leaves the random initialisation.

    conv1: the RGB and flow channels take the pretrained filters, channel k of each group the filter of RGB channel k;
    heatmap and indicator channels keep their random filters. `caffe_input` (Keras' ImageNet file): the file's conv1
    reads Caffe-style BGR pixels in [0, 255] minus `CAFFE_MEAN_BGR`, so its filters are put in RGB order, scaled by
    127.5 and the mean folded into the bias, which makes our [-1, 1] RGB give the file's conv1 responses (except
    on the 3-px zero-padded border). The flow channels take the same scaled filters: flow / 20 is in the same range
    as our RGB (App. B).
    """
    if weights_path is None or not Path(weights_path).is_file():
        logger.warning("No pretrained trunk weights at %s: the %s trunk starts from scratch (random init).",
                       weights_path, trunk.architecture)
        return False
    rgb_net = build_backbone(trunk.architecture, (trunk.crop_size, trunk.crop_size, 3))
    try:
        rgb_net.load_weights(str(weights_path))
    except (ValueError, KeyError, OSError) as error:  # what Keras raises for a file that does not fit
        raise ValueError(f"{weights_path}: cannot load as 3-channel {trunk.architecture} weights (expected "
                         f"Keras' ImageNet notop file or a .weights.h5 of build_backbone): {error}") from error

    for source in rgb_net.layers:
        if not source.weights:
            continue
        target = trunk.backbone.get_layer(source.name)
        if source.name == CONV1_NAME:
            target.set_weights(_widened_conv1(source.get_weights(), target.get_weights(), trunk.layout, caffe_input))
        else:
            target.set_weights(source.get_weights())
    logger.info("Trunk initialised from %s (conv1 pretrained for %s, random for %s).", weights_path,
                [g for g in trunk.channels if g in PRETRAINED_GROUPS],
                [g for g in trunk.channels if g not in PRETRAINED_GROUPS])
    return True


def _widened_conv1(pretrained, initial, layout: dict[str, slice], caffe_input: bool):
    """conv1 [kernel [7, 7, C, F], bias [F]] from the 3-channel pretrained one and the random C-channel one."""
    kernel_rgb, bias_rgb = (np.asarray(w, dtype=np.float64) for w in pretrained)  # [7, 7, 3, F], [F]
    kernel, bias = np.array(initial[0], dtype=np.float64), bias_rgb.copy()
    if caffe_input:
        mean_rgb = np.asarray(CAFFE_MEAN_BGR[::-1])
        kernel_rgb = kernel_rgb[:, :, ::-1, :]  # the file's BGR input order -> our RGB
        # W . (127.5 (rgb + 1) - mean) = (127.5 W) . rgb + W . (127.5 - mean)
        if "rgb" in layout:
            bias = bias + np.einsum("hwcf,c->f", kernel_rgb, RGB_HALF_RANGE - mean_rgb)
        kernel_rgb = RGB_HALF_RANGE * kernel_rgb
    for group in PRETRAINED_GROUPS:
        if group in layout:
            kernel[:, :, layout[group], :] = kernel_rgb
    return [kernel.astype(np.float32), bias.astype(np.float32)]
