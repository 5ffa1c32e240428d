"""SavedModel export: TF Serving's layout, a reload in a fresh process that matches the Keras model, versions, and
restoring a training run from its checkpoint and gin config."""
import json
import os
import subprocess
import sys
import textwrap

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from mhr_tf import evaluate, export, train
from mhr_tf.data import pipeline
from mhr_tf.model import motion_hmr, regressor

WINDOW, CROP = 8, 64
CHANNELS = ("flow", "heatmaps", "occlusion")
TINY = dict(architecture="resnet_tiny", lstm_units=8, head_units=8, regressor_units=8)
# Serving must match the Keras model to this (issue 7).
TOLERANCE = 1e-5


def perturb(model, seed=0):
    """Random weights, so that every variable moves the outputs (a dropped variable cannot go unnoticed)."""
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        variable.assign(variable.numpy() + rng.normal(0, 0.05, variable.shape).astype(np.float32))


def reference_frames(model, inputs) -> dict:
    """App. B's assembly written out here: the P current predictions, then the last pair's future one."""
    out = model({"inputs": inputs}, training=False)
    return {name: np.concatenate([out[f"current/{name}"].numpy(), out[f"future/{name}"].numpy()[:, -1:]], axis=1)
            for name in export.SERVING_OUTPUTS}


@pytest.fixture(scope="module")
def tiny():
    model = motion_hmr.build_model(crop_size=CROP, channels=CHANNELS, with_vertices=True, **TINY)
    perturb(model)
    config = export.ServingConfig(WINDOW, CROP, CHANNELS, "dis", source="test")
    inputs = np.random.default_rng(1).normal(0, 0.5, (2, WINDOW - 1, CROP, CROP, config.num_channels))
    return model, config, inputs.astype(np.float32)


@pytest.fixture
def clean_gin():
    yield
    with gin.unlock_config():
        gin.clear_config()


SERVE_IN_FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow as tf
    loaded = tf.saved_model.load(sys.argv[1])
    signature = loaded.signatures["serving_default"]
    spec = signature.structured_input_signature[1]["inputs"]
    outputs = signature(inputs=tf.constant(np.load(sys.argv[2])))
    np.savez(sys.argv[3], **{k: v.numpy() for k, v in outputs.items()})
    print(json.dumps({"input": [spec.dtype.name, spec.shape.as_list()], "outputs": sorted(outputs)}))
""")


def test_saved_model_reloaded_in_a_fresh_process_matches_keras(tiny, tmp_path):
    model, config, inputs = tiny
    path = export.export_saved_model(model, config, tmp_path / "exports")
    assert path == tmp_path / "exports" / "1"
    for name in ("saved_model.pb", "variables/variables.index", "assets.extra/mhr_tf.json", "assets.extra/faces.npy"):
        assert (path / name).is_file(), name
    np.save(tmp_path / "inputs.npy", inputs)
    # The fresh process imports TensorFlow only: the SavedModel must not need mhr_tf's Python code.
    done = subprocess.run([sys.executable, "-c", SERVE_IN_FRESH_PROCESS, str(path), str(tmp_path / "inputs.npy"),
                           str(tmp_path / "served.npz")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-2000:]
    signature = json.loads(done.stdout.strip().splitlines()[-1])
    assert signature == {"input": ["float32", [None, WINDOW - 1, CROP, CROP, 16]],
                         "outputs": sorted(export.SERVING_OUTPUTS)}
    served, expected = np.load(tmp_path / "served.npz"), reference_frames(model, inputs)
    for name in export.SERVING_OUTPUTS:
        assert served[name].shape == expected[name].shape
        np.testing.assert_allclose(served[name], expected[name], atol=TOLERANCE, rtol=0, err_msg=name)
    config_back, faces = export.load_metadata(path)
    assert (config_back.num_frames, config_back.crop_size, config_back.channels) == (WINDOW, CROP, CHANNELS)
    np.testing.assert_array_equal(faces, model.get_layer("body_model").smpl.body_model.faces)


def test_versions_are_numbered_and_never_overwritten(tiny, tmp_path):
    model, config, _ = tiny
    for name in ("1", "3", ".partial-4", "notes"):
        (tmp_path / name).mkdir()
    assert export.next_version(tmp_path) == 4
    assert export.next_version(tmp_path / "new") == 1
    with pytest.raises(export.ExportError, match="version 3 exists already"):
        export.export_saved_model(model, config, tmp_path, version=3)
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "3" / "saved_model.pb").write_bytes(b"")
    assert export.resolve_version(tmp_path) == tmp_path / "3"
    assert export.resolve_version(tmp_path / "1") == tmp_path / "1"
    with pytest.raises(export.ExportError, match="no saved_model.pb"):
        export.resolve_version(tmp_path / "notes")


def test_training_config_comes_from_the_runs_gin(tmp_path, clean_gin):
    (tmp_path / "operative_config.gin").write_text(
        "train.num_frames = 16\ntrain.crop_size = 96\nChannels.use_rgb = True\nChannels.use_flow = False\n"
        "Channels.use_keypoints = True\nmake_dataset.flow_backend = 'tvl1'\n")
    config = export.training_config(tmp_path)
    assert (config.num_frames, config.crop_size, config.channels, config.flow_backend) == \
        (16, 96, ("rgb", "heatmaps", "occlusion"), "tvl1")
    with pytest.raises(export.ExportError, match="operative_config.gin: missing"):
        export.training_config(tmp_path / "elsewhere")


def regressor_weights_are_checkpointed() -> bool:
    """Whether every IterativeRegressor variable is reachable by tf.train.Checkpoint."""
    layer = regressor.IterativeRegressor(4, 1, 0.0)
    layer.build((None, 2))
    root = tf.train.Checkpoint(layer=layer)  # TrackableView keeps only a weak reference to it
    reachable = {id(o) for o in tf.train.TrackableView(root).descendants()}
    return all(id(v) in reachable for v in layer.variables)


@pytest.mark.xfail(not regressor_weights_are_checkpointed(), raises=export.ExportError, strict=True,
                   reason="mhr_tf/model/regressor.py keeps its hidden Dense layers in a plain list, which "
                          "tf.train.Checkpoint does not track: checkpoints lack them, and restore_model refuses")
def test_checkpoint_of_a_run_restores_the_trained_network(tmp_path, clean_gin):
    train.parse_gin([], ["train.num_frames = 8", "train.crop_size = 64", "make_dataset.flow_backend = 'dis'",
                         *(f"build_model.{k} = {v!r}" for k, v in TINY.items())])
    channels = pipeline.Channels()
    model = train.build_model(crop_size=CROP, channels=channels.names, num_pairs=WINDOW - 1, with_vertices=True)
    perturb(model, seed=3)
    step = tf.Variable(250, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=keras.optimizers.Adam(), step=step,
                                     next_example=tf.Variable(0, dtype=tf.int64))
    tf.train.CheckpointManager(checkpoint, tmp_path / "checkpoints", max_to_keep=1).save(checkpoint_number=250)
    bindings = "\n".join(f"train.{k} = {v!r}" for k, v in (("num_frames", WINDOW), ("crop_size", CROP)))
    (tmp_path / "operative_config.gin").write_text(gin.operative_config_str() + "\n" + bindings + "\n")

    inputs = np.random.default_rng(2).normal(0, 0.5, (1, WINDOW - 1, CROP, CROP, 16)).astype(np.float32)
    expected = reference_frames(model, inputs)
    predictor = evaluate.checkpoint_predictor(tmp_path)
    assert (predictor.config.step, predictor.config.num_frames, predictor.config.channels) == (250, 8, CHANNELS)
    restored = predictor(inputs)
    served = evaluate.saved_model_predictor(export.export_checkpoint(tmp_path, tmp_path / "exports"))(inputs)
    for name in export.SERVING_OUTPUTS:
        np.testing.assert_allclose(restored[name], expected[name], atol=TOLERANCE, rtol=0, err_msg=name)
        np.testing.assert_allclose(served[name], expected[name], atol=TOLERANCE, rtol=0, err_msg=name)
