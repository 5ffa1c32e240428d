"""SavedModel export: TF Serving's layout, a reload in a fresh process that matches the Keras model, versions, and
restoring a training run from its run directory: the preprocessing contract travels with the model everywhere."""
import dataclasses
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

from mhr_tf import evaluate, export, gin_config
from mhr_tf.data.preprocessing import Channels, ContractError, Preprocessing
from mhr_tf.model import motion_hmr
from mhr_tf.training import loop
from tests.helpers import background_windows_for

WINDOW, CROP = 8, 64
PRE = Preprocessing(num_frames=WINDOW, crop_size=CROP)
CHANNELS = ("flow", "heatmaps", "occlusion")
TINY = motion_hmr.ModelConfig(architecture="resnet_tiny", lstm_units=8, head_units=8, regressor_units=8)
# Serving must match the Keras model to this.
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
    model = TINY.build(CROP, CHANNELS, with_vertices=True)
    perturb(model)
    inputs = np.random.default_rng(1).normal(0, 0.5, (2, WINDOW - 1, CROP, CROP, PRE.channels.count))
    return model, inputs.astype(np.float32)


@pytest.fixture
def clean_gin():
    gin.clear_config()
    yield
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
    model, inputs = tiny
    path = export.export_saved_model(model, PRE, TINY, tmp_path / "exports", source="test")
    assert path == tmp_path / "exports" / "1"
    for name in ("saved_model.pb", "variables/variables.index", "assets.extra/mhr_tf.json", "assets.extra/faces.npy",
                 "assets.extra/preprocessing.json", "assets.extra/model.json"):
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
    meta = export.load_metadata(path)
    assert (meta.pre, meta.config, meta.source) == (PRE, TINY, "test")
    np.testing.assert_array_equal(meta.faces, model.get_layer("body_model").smpl.body_model.faces)


def test_versions_are_numbered_and_never_overwritten(tiny, tmp_path):
    model, _ = tiny
    for name in ("1", "3", ".partial-4", "notes"):
        (tmp_path / name).mkdir()
    assert export.next_version(tmp_path) == 4
    assert export.next_version(tmp_path / "new") == 1
    with pytest.raises(export.ExportError, match="version 3 exists already"):
        export.export_saved_model(model, PRE, TINY, tmp_path, version=3)
    (tmp_path / "1" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "3" / "saved_model.pb").write_bytes(b"")
    assert export.resolve_version(tmp_path) == tmp_path / "3"
    assert export.resolve_version(tmp_path / "1") == tmp_path / "1"
    with pytest.raises(export.ExportError, match="no saved_model.pb"):
        export.resolve_version(tmp_path / "notes")


def _save_run(directory, model, pre: Preprocessing, config=TINY, step: int = 250) -> None:
    """A run directory as training leaves it: the contract, the model settings and a checkpoint."""
    pre.save(directory)
    config.save(directory)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=keras.optimizers.Adam(),
                                     step=tf.Variable(step, dtype=tf.int64), next_example=tf.Variable(0, tf.int64))
    tf.train.CheckpointManager(checkpoint, directory / "checkpoints", max_to_keep=1).save(checkpoint_number=step)


def test_checkpoint_of_a_run_restores_the_trained_network(tmp_path):
    model = TINY.build(CROP, CHANNELS, num_pairs=WINDOW - 1, with_vertices=True)
    perturb(model, seed=3)
    _save_run(tmp_path, model, PRE)
    inputs = np.random.default_rng(2).normal(0, 0.5, (1, WINDOW - 1, CROP, CROP, 16)).astype(np.float32)
    expected = reference_frames(model, inputs)
    predictor = evaluate.checkpoint_predictor(tmp_path)
    assert (predictor.step, predictor.pre) == (250, PRE)
    restored = predictor(inputs)
    served = evaluate.saved_model_predictor(export.export_checkpoint(tmp_path, tmp_path / "exports"))(inputs)
    for name in export.SERVING_OUTPUTS:
        np.testing.assert_allclose(restored[name], expected[name], atol=TOLERANCE, rtol=0, err_msg=name)
        np.testing.assert_allclose(served[name], expected[name], atol=TOLERANCE, rtol=0, err_msg=name)


def test_a_contract_that_does_not_fit_the_checkpoints_channels_is_named(tmp_path):
    model = TINY.build(CROP, CHANNELS, num_pairs=WINDOW - 1)
    _save_run(tmp_path, model, PRE)
    dataclasses.replace(PRE, channels=Channels(True, True, True)).save(tmp_path)  # another run's contract
    with pytest.raises(ContractError, match=r"reads 16 input channels, the contract .*preprocessing.json gives 19"):
        export.restore_model(tmp_path)


def test_a_saved_model_whose_contract_does_not_fit_its_signature_is_named(tiny, tmp_path):
    model, _ = tiny
    path = export.export_saved_model(model, PRE, TINY, tmp_path)
    dataclasses.replace(PRE, crop_size=96).save(path / export.METADATA_DIR)
    with pytest.raises(ContractError, match=r"takes inputs \[None, 7, 64, 64, 16\].*makes \[None, 7, 96, 96, 16\]"):
        export.load_metadata(path)


USE_IN_FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    from mhr_tf import evaluate, predict
    from mhr_tf.data import threedpw
    export_dir, threedpw_root, out = sys.argv[1:4]
    predictor = evaluate.load_predictor(saved_model=export_dir)
    results, _ = evaluate.run(out + "/eval", threedpw_root, "test", saved_model=export_dir, plots=False,
                              progress=False)
    sequence = sorted((threedpw.list_sequences(threedpw_root, "test")))[0]
    written = predict.predict_video(predictor, out + "/predict", threedpw_sequence=sequence, overlay=False)
    print(json.dumps({"loaded": predictor.pre.to_json(), "evaluated": results[0].meta["preprocessing"],
                      "predicted": json.loads(written["json"].read_text())["preprocessing"],
                      "frames": results[0].summary["paper"]["frames"]}))
""")


def test_a_non_default_contract_travels_from_training_to_export_evaluation_and_prediction(sim_data, tmp_path,
                                                                                         clean_gin):
    """Trained with TF TV-L1 flow, 48-px crops, 7-frame clips and RGB + keypoints; exported; loaded in a fresh
    process that evaluates and predicts with exactly that contract."""
    frames = 7
    background_windows_for(sim_data["backgrounds"], frames)
    gin_config.parse(["gin/demo.gin"], [
        "ModelConfig.architecture = 'resnet_tiny'", "ModelConfig.lstm_units = 8", "ModelConfig.head_units = 8",
        "ModelConfig.regressor_units = 8", f"Preprocessing.num_frames = {frames}", "Preprocessing.crop_size = 48",
        "FlowSettings.backend = 'tf_tvl1'", "Channels.use_rgb = True", "train.batch_size = 1",
        "train.validate_every = 0", "train.image_summary_every = 0", "train.progress = False"])
    trained = Preprocessing()
    loop.train(tmp_path / "run", surreal_root=sim_data["surreal"], background_root=sim_data["backgrounds"],
               num_steps=1)
    gin.clear_config()  # nothing below may read gin
    path = export.export_checkpoint(tmp_path / "run", tmp_path / "exports")
    done = subprocess.run([sys.executable, "-c", USE_IN_FRESH_PROCESS, str(path), str(sim_data["threedpw"]),
                           str(tmp_path)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    used = json.loads(done.stdout.strip().splitlines()[-1])
    expected = trained.to_json()
    assert expected["flow"]["backend"] == "tf_tvl1" and expected["crop_size"] == 48
    assert used["loaded"] == used["evaluated"] == used["predicted"] == expected
    assert used["frames"] > 0
