"""The preprocessing contract's wire: what the pipeline sends (and a SavedModel takes) beside what the network sees,
with flow in the pipeline (the same groups) or in the model (the pair crops in place of rgb and flow)."""
import json

import pytest

from mhr_tf.data.preprocessing import Channels, ContractError, FlowSettings, Preprocessing, wire_groups

IN_MODEL = FlowSettings(backend="tf_tvl1", placement="model")


@pytest.mark.parametrize("channels, wire, width", [
    (Channels(False, True, True), ("pairs", "heatmaps", "occlusion"), 19),
    (Channels(True, True, True), ("pairs", "heatmaps", "occlusion"), 19),  # rgb is the pair's first crop
    (Channels(True, True, False), ("pairs", "occlusion"), 7),
    (Channels(False, True, False), ("pairs", "occlusion"), 7),
    (Channels(True, False, True), ("rgb", "heatmaps", "occlusion"), 16),  # no flow: nothing for the model to do
])
def test_flow_in_the_model_sends_the_pair_crops_in_place_of_rgb_and_flow(channels, wire, width):
    pre = Preprocessing(channels=channels, flow=IN_MODEL)
    assert pre.wire_names == wire and pre.wire_channels == width
    assert pre.flow_in_model == channels.use_flow
    assert pre.channels.count == 3 * channels.use_rgb + 3 * channels.use_flow + 12 * channels.use_keypoints + 1


@pytest.mark.parametrize("channels", [Channels(False, True, True), Channels(True, True, True), Channels(True, False, False)])
def test_flow_in_the_pipeline_sends_the_network_groups(channels):
    pre = Preprocessing(channels=channels, flow=FlowSettings(backend="tf_tvl1"))
    assert pre.wire_names == channels.names and pre.wire_channels == channels.count and not pre.flow_in_model
    assert wire_groups(channels.names, "pipeline") == channels.names


def test_a_contract_with_flow_in_the_model_round_trips_through_json_and_names_its_wire():
    pre = Preprocessing(num_frames=8, crop_size=64, flow=FlowSettings(backend="tf_tvl1", placement="model",
                                                                      tvl1=(("warps", 2),)))
    content = json.loads(json.dumps(pre.to_json()))
    assert content["wire_groups"] == ["pairs", "heatmaps", "occlusion"]
    assert content["channel_groups"] == ["flow", "heatmaps", "occlusion"]
    assert Preprocessing.from_json(content) == pre
    assert "the pipeline sends pairs + heatmaps + occlusion" in pre.describe()


@pytest.mark.parametrize("backend", ["dis", "tvl1"])
def test_an_opencv_backend_is_refused_inside_the_model(backend):
    with pytest.raises(ContractError, match=f"backend '{backend}' is OpenCV"):
        FlowSettings(backend=backend, placement="model")
