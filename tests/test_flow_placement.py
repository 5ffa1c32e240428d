"""Flow in the pipeline or in the model (`FlowSettings.placement`): the same examples give the network the same
inputs either way, and a contract with flow in the model goes through export, restore and serving with the wire's
width (the pair crops in place of rgb and flow)."""
import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from mhr_tf import evaluate, export
from mhr_tf.data import pipeline, sources
from mhr_tf.data.preprocessing import Augmentation, Channels, FlowSettings, Preprocessing
from mhr_tf.model import motion_hmr
from tests.helpers import background_windows_for

FRAMES, CROP = 6, 32
TVL1 = (("warps", 2), ("inner_iterations", 5))  # cheap settings: the comparison holds at any
IN_PIPELINE = Preprocessing(num_frames=FRAMES, crop_size=CROP, channels=Channels(True, True, True),
                            flow=FlowSettings(backend="tf_tvl1", tvl1=TVL1),
                            augmentation=Augmentation(total_occlusion_probability=0.7))
IN_MODEL = dataclasses.replace(IN_PIPELINE, flow=dataclasses.replace(IN_PIPELINE.flow, placement="model"))
TINY = motion_hmr.ModelConfig(architecture="resnet_tiny", lstm_units=8, head_units=8, regressor_units=8)
# TV-L1 from the wire's pixels ((x / 127.5 - 1 + 1) * 127.5: within ~2e-5 of the crops) against TV-L1 from the
# crops, in the network's /20 units: 0.002 px at most (its median filter can turn a tie the other way), far below
# the backend's own error (0.69 px, benchmarks/flow.json); on average 100x less.
FLOW_TOLERANCE, FLOW_MEAN_TOLERANCE = 1e-4, 1e-6


@pytest.fixture(scope="module")
def source(sim_data):
    background_windows_for(sim_data["backgrounds"], FRAMES)
    return sources.FileSource(sim_data["surreal"], sim_data["backgrounds"], FRAMES)


def test_both_placements_give_the_network_the_same_inputs_on_the_same_examples(source):
    """The same seed gives the same examples under both contracts; the model's flow layer applied to what the
    model-placement pipeline sends gives what the pipeline-placement pipeline sends."""
    batches = {}
    for name, pre in (("pipeline", IN_PIPELINE), ("model", IN_MODEL)):
        batches[name] = next(iter(pipeline.make_dataset(source, pre, batch_size=3, seed=5)))
    (sent_p, labels_p), (sent_m, labels_m) = batches["pipeline"], batches["model"]
    for key in labels_p:
        np.testing.assert_array_equal(labels_p[key], labels_m[key], err_msg=key)
    assert sent_p["inputs"].shape[-1] == 19 and sent_m["inputs"].shape[-1] == 19  # rgb 3 + flow 3, or pairs 6
    occluded = labels_p["occluded"].numpy()[:, :-1].astype(bool)
    assert occluded.any() and (~occluded).any()

    model = TINY.build(CROP, IN_MODEL.channels.names, num_pairs=FRAMES - 1, flow=IN_MODEL.flow, pretrained=False)
    network = model.get_layer("flow")(sent_m["inputs"]).numpy()
    expected = sent_p["inputs"].numpy()
    assert network.shape == expected.shape
    np.testing.assert_allclose(network[..., :3], expected[..., :3], rtol=0, atol=3e-7)  # rgb
    np.testing.assert_allclose(network[..., 3:6], expected[..., 3:6], rtol=0, atol=FLOW_TOLERANCE)  # flow
    assert np.abs(network[..., 3:6] - expected[..., 3:6]).mean() < FLOW_MEAN_TOLERANCE
    np.testing.assert_array_equal(network[..., 6:], expected[..., 6:])  # heatmaps, indicator
    assert np.abs(expected[~occluded][..., 3:5]).max() > 0.01  # the flow is not trivially 0
    assert not network[occluded][..., :-1].any()


def perturb(model, seed=0):
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        variable.assign(variable.numpy() + rng.normal(0, 0.05, variable.shape).astype(np.float32))


SERVE_IN_FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow as tf
    signature = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    spec = signature.structured_input_signature[1]["inputs"]
    outputs = signature(inputs=tf.constant(np.load(sys.argv[2])))
    np.savez(sys.argv[3], **{k: v.numpy() for k, v in outputs.items()})
    print(json.dumps({"input": spec.shape.as_list()}))
""")


def test_a_contract_with_flow_in_the_model_round_trips_through_export_and_restore(tmp_path):
    pre = IN_MODEL
    model = TINY.build(CROP, pre.channels.names, num_pairs=pre.num_pairs, with_vertices=True, flow=pre.flow)
    perturb(model)
    wire = np.random.default_rng(1).uniform(-1, 1, (2, pre.num_pairs, CROP, CROP, pre.wire_channels))
    wire[..., -1] = 0.0
    wire = wire.astype(np.float32)
    expected = export.assembled_outputs(model({"inputs": wire}, training=False))

    # A run directory as training leaves it, restored (rebuilt from its contract: with the flow layer) and exported.
    pre.save(tmp_path / "run")
    TINY.save(tmp_path / "run")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=keras.optimizers.Adam(),
                                     step=tf.Variable(7, dtype=tf.int64), next_example=tf.Variable(0, tf.int64))
    tf.train.CheckpointManager(checkpoint, tmp_path / "run" / "checkpoints", max_to_keep=1).save(checkpoint_number=7)
    restored = export.restore_model(tmp_path / "run")
    assert restored.model.get_layer("flow").settings == pre.flow
    path = export.export_saved_model(restored.model, pre, TINY, tmp_path / "exports", faces=restored.faces)
    assert export.load_metadata(path).pre == pre
    assert json.loads((path / export.METADATA_DIR / export.SERVING_FILE).read_text())["input_shape"] == [
        None, FRAMES - 1, CROP, CROP, 19]

    np.save(tmp_path / "wire.npy", wire)
    done = subprocess.run([sys.executable, "-c", SERVE_IN_FRESH_PROCESS, str(path), str(tmp_path / "wire.npy"),
                           str(tmp_path / "served.npz")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"input": [None, FRAMES - 1, CROP, CROP, 19]}
    served = np.load(tmp_path / "served.npz")
    predicted = evaluate.checkpoint_predictor(tmp_path / "run")(wire)  # evaluation and predict's path
    for name in export.SERVING_OUTPUTS:
        np.testing.assert_allclose(served[name], expected[name], atol=1e-5, err_msg=name)
        np.testing.assert_allclose(predicted[name], expected[name], atol=1e-5, err_msg=name)


class DifferenceFlow(tf.Module):
    """A stand-in for a converted FlowNet/RAFT: flow x = mean colour of image2 - image1, flow y = a constant 1.5."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)] * 2)
    def __call__(self, image1, image2):
        x = tf.reduce_mean(image2 - image1, axis=-1)
        return tf.stack([x, tf.fill(tf.shape(x), 1.5)], axis=-1)


def test_a_flow_saved_model_inside_the_model_is_exported_with_it(tmp_path):
    tf.saved_model.save(DifferenceFlow(), str(tmp_path / "difference"))
    pre = dataclasses.replace(IN_MODEL, flow=FlowSettings(backend=f"saved_model:{tmp_path / 'difference'}",
                                                          placement="model"))
    model = TINY.build(CROP, pre.channels.names, num_pairs=pre.num_pairs, with_vertices=True, flow=pre.flow)
    perturb(model, seed=2)
    wire = np.random.default_rng(3).uniform(-1, 1, (1, pre.num_pairs, CROP, CROP, pre.wire_channels))
    wire[..., -1] = 0.0
    wire = wire.astype(np.float32)
    expected = export.assembled_outputs(model({"inputs": wire}, training=False))
    path = export.export_saved_model(model, pre, TINY, tmp_path / "exports")
    (tmp_path / "difference").rename(tmp_path / "moved")  # the export holds the flow network itself
    served = tf.saved_model.load(str(path)).signatures[export.SIGNATURE](inputs=tf.constant(wire))
    for name in export.SERVING_OUTPUTS:
        np.testing.assert_allclose(served[name], expected[name], atol=1e-5, err_msg=name)
