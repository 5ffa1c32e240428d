"""Flow as the network's frozen first layer (paper §3.2: FlowNet runs as a frozen module inside the network, so flow
is accelerator work; `FlowSettings.placement` "model").

The pipeline then sends the contract's wire groups (`Preprocessing.wire_names`): the pair's two RGB crops ("pairs",
6 channels: frame t then frame t+1 in box t, each pixel / 127.5 - 1, zero on totally occluded frames) in place of
the rgb and flow groups, the other groups unchanged. `PairFlow` turns them into the network's groups
(`Preprocessing.channels.names`), exactly as the pipeline would have made them:

    wire [..., S, S, W]  ─► pairs back to 0..255 RGB ─► flow (the contract's TF backend: TV-L1 with its overrides, or
    a flow SavedModel) ─► / divisor + magnitude (App. B) ─► 0 on totally occluded frames (the indicator channel)
    ─► [rgb (the pair's first crop, if the contract uses RGB), flow, heatmaps, occlusion]  [..., S, S, C]

No weights, nothing trainable, no gradient into the flow.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from mhr_tf.data import flow as flow_backends
from mhr_tf.data.preprocessing import (FLOW_DIVISOR, RGB_HALF_RANGE, FlowSettings, group_slices, group_width,
                                         wire_groups)


@keras.saving.register_keras_serializable(package="mhr_tf")
class PairFlow(keras.layers.Layer):
    """The contract's wire `[..., S, S, W]` -> the network's inputs `[..., S, S, C]`, computing the flow group from
    the "pairs" group (see the module docstring). Leading dims (e.g. `[B, P]`) are folded into one batch for the
    flow backend.

    channels: the network's groups (`Channels.names`, with "flow"); backend "tf_tvl1" or "saved_model:<dir>";
    divisor: App. B's /20; tvl1: `TVL1Params` overrides for "tf_tvl1" (`FlowSettings.tvl1`, as a dict or pairs).
    """

    def __init__(self, channels=("flow", "heatmaps", "occlusion"), backend: str = "tf_tvl1",
                 divisor: float = FLOW_DIVISOR, tvl1=(), **kwargs):
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.channels = tuple(channels)
        # The contract's own checks: a Python (OpenCV) backend cannot run inside the model.
        self.settings = FlowSettings(backend=backend, placement="model", divisor=float(divisor),
                                     tvl1=tuple(dict(tvl1).items()))
        if "flow" not in self.channels:
            raise ValueError(f"PairFlow: channels {self.channels} have no 'flow' group to compute")
        self.wire = wire_groups(self.channels, "model")
        self.wire_slices = group_slices(self.wire)
        self.wire_channels = sum(group_width(name) for name in self.wire)
        self.num_channels = sum(group_width(name) for name in self.channels)
        if self.settings.backend.startswith(flow_backends.SAVED_MODEL_PREFIX):
            # An attribute, so that an exported SavedModel and a checkpoint hold the flow network too.
            self.flow_model = flow_backends.saved_model(self.settings.backend)

    def build(self, input_shape):
        if input_shape[-1] != self.wire_channels or input_shape[-2] is None or input_shape[-3] is None:
            raise ValueError(f"{self.name}: inputs {tuple(input_shape)} — expected [..., S, S, {self.wire_channels}] "
                             f"with a static S (the wire groups {self.wire})")
        super().build(input_shape)

    def call(self, inputs):
        inputs = tf.convert_to_tensor(inputs)
        leading, frame = tf.shape(inputs)[:-3], inputs.shape[-3:-1]
        pairs = tf.stop_gradient(inputs[..., self.wire_slices["pairs"]])
        pixels = tf.reshape((pairs + 1.0) * RGB_HALF_RANGE, [-1, frame[0], frame[1], 6])
        uv = flow_backends.pair_flow(pixels[..., :3], pixels[..., 3:], self.settings)  # [N, S, S, 2]
        flow3 = tf.reshape(flow_backends.flow_channels(uv, self.settings.divisor),
                           tf.concat([leading, [frame[0], frame[1], 3]], axis=0))
        shown = 1.0 - inputs[..., self.wire_slices["occlusion"]]  # the total-occlusion indicator
        groups = {"rgb": pairs[..., :3], "flow": tf.stop_gradient(flow3 * shown)}
        parts = [groups[name] if name in groups else inputs[..., self.wire_slices[name]] for name in self.channels]
        return tf.concat(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_channels,)

    def get_config(self):
        return {**super().get_config(), "channels": list(self.channels), "backend": self.settings.backend,
                "divisor": self.settings.divisor, "tvl1": dict(self.settings.tvl1)}


def network_inputs(wire, pre) -> tf.Tensor:
    """What the network's trunk sees (`pre.channels.names`) from what the pipeline sent (`pre.wire_names`): the flow
    layer applied when the contract computes flow in the model, the wire itself otherwise. For pictures and
    summaries that read the channel groups (`trunk.channel_layout`)."""
    if not pre.flow_in_model:
        return tf.convert_to_tensor(wire)
    layer = PairFlow(pre.channels.names, pre.flow.backend, pre.flow.divisor, pre.flow.tvl1)
    return layer(tf.convert_to_tensor(wire, tf.float32))
