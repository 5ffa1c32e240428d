"""The trainer and the gin row files, at tiny size on simulator data."""
import re
from pathlib import Path

import gin
import numpy as np
import pytest
import tensorflow as tf

from mhr_tf import losses, train
from mhr_tf.data import pipeline

GIN_DIR = Path(__file__).resolve().parent.parent / "gin"
GIN_FILES = sorted(p.name for p in GIN_DIR.glob("*.gin"))
TINY = ["build_model.architecture = 'resnet_tiny'", "build_model.lstm_units = 8", "build_model.head_units = 8",
        "build_model.regressor_units = 8", "build_model.adversary_units = 8", "train.crop_size = 32",
        "train.validate_every = 0", "train.image_summary_every = 0", "train.summary_every = 1",
        "train.progress = False"]
# What each row of the paper's tables changes, independently of the files: (rgb, flow, keypoints), augmentation.
EXPECTED_CHANNELS = {"rgb": (True, False, False), "rgb_dann": (True, False, False), "flow": (False, True, False),
                     "rgb_kp": (True, False, True), "kp": (False, False, True), "flow_kp": (False, True, True),
                     "full": (False, True, True)}
EXPECTED_FRAMES = {"clip8": (8, 6), "clip16": (16, 6), "clip31": (31, 3), "clip56": (56, 2), "full": (31, 3)}


@pytest.fixture(autouse=True)
def _clear_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def test_every_gin_file_is_found():
    assert {"base.gin", "full.gin", "demo.gin", "rgb.gin", "rgb_dann.gin", "flow.gin", "rgb_kp.gin", "kp.gin",
            "flow_kp.gin", "no_occlusion.gin", "no_tracking_no_occlusion.gin", "static_bg_no_occlusion.gin",
            "clip8.gin", "clip16.gin", "clip31.gin", "clip56.gin"} <= set(GIN_FILES)


@pytest.mark.parametrize("name", [n for n in GIN_FILES if n not in ("base.gin", "demo.gin")])
def test_row_file_names_its_table_row_and_number(name):
    first = (GIN_DIR / name).read_text().splitlines()[0]
    assert re.match(r"# Paper Table [123], (row|clip length) .*\d+\.\d mm", first), first


@pytest.mark.parametrize("name", GIN_FILES)
def test_gin_file_parses_and_builds_its_model(name):
    train.parse_gin([f"gin/{name}"], TINY)
    stem = name[:-4]
    channels = pipeline.Channels()
    if stem in EXPECTED_CHANNELS:
        assert (channels.use_rgb, channels.use_flow, channels.use_keypoints) == EXPECTED_CHANNELS[stem]
    augmentation = pipeline.Augmentation()
    if "no_occlusion" in stem:
        assert not augmentation.slic_occluders and augmentation.total_occlusion_probability == 0
    assert augmentation.track_camera == ("no_tracking" not in stem)
    assert augmentation.static_background == stem.startswith("static_bg")
    bindings = gin.get_bindings("train")
    if stem in EXPECTED_FRAMES:
        assert (bindings["num_frames"], bindings["batch_size"]) == EXPECTED_FRAMES[stem]
    model = train.build_model(crop_size=32, channels=channels.names, num_pairs=3)
    outputs = model({"inputs": tf.zeros([1, 3, 32, 32, channels.count])})
    assert outputs["current/joints3d"].shape == (1, 3, 14, 3)
    assert ("domain/logits" in outputs) == (stem == "rgb_dann")


@pytest.mark.parametrize("name", ["full.gin", "rgb.gin", "kp.gin", "static_bg_no_occlusion.gin"])
def test_gin_file_makes_a_pipeline_batch(name, sim_data):
    train.parse_gin([f"gin/{name}"], TINY)
    channels = pipeline.Channels()
    ds = pipeline.make_dataset(sim_data["surreal"], sim_data["backgrounds"], num_frames=6, batch_size=1,
                               crop_size=32, channels=channels)
    features, labels = next(iter(ds))
    assert features["inputs"].shape == (1, 5, 32, 32, channels.count)
    if name.startswith("static_bg"):
        assert float(labels["occluded_by_slic"][0]) == 0.0 and float(tf.reduce_sum(labels["occluded"])) == 0.0


def _run(model_dir, sim_data, steps, extra=()):
    gin.clear_config()
    train.parse_gin(["gin/demo.gin"], TINY + ["train.num_frames = 5", "train.batch_size = 2",
                                              "train.checkpoint_every = 1"] + list(extra))
    return train.train(model_dir, surreal_root=sim_data["surreal"], background_root=sim_data["backgrounds"],
                       num_steps=steps)


def _state(model_dir):
    reader = tf.train.load_checkpoint(str(tf.train.latest_checkpoint(str(Path(model_dir) / "checkpoints"))))
    names = sorted(n for n in reader.get_variable_to_shape_map()
                   if n.startswith(("optimizer/_variables", "optimizer/_iterations", "model/", "step", "next_example")))
    return {n: reader.get_tensor(n) for n in names}


def test_resume_continues_step_weights_optimizer_and_data_exactly(sim_data, tmp_path):
    tf.config.experimental.enable_op_determinism()
    _run(tmp_path / "resumed", sim_data, 2)
    _run(tmp_path / "resumed", sim_data, 3)  # a new train() call: restores step 2, trains one more
    _run(tmp_path / "straight", sim_data, 3)
    resumed, straight = _state(tmp_path / "resumed"), _state(tmp_path / "straight")
    assert resumed.keys() == straight.keys() and len(resumed) > 20
    assert sum(n.startswith("optimizer/_variables") for n in resumed) > 20  # Adam's moments
    for name in resumed:
        np.testing.assert_allclose(resumed[name], straight[name], rtol=1e-5, atol=1e-7, err_msg=name)
    assert int(resumed["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 3
    assert int(resumed["next_example/.ATTRIBUTES/VARIABLE_VALUE"]) == 6  # 3 steps x 2 clips, no bad samples
    assert (tmp_path / "resumed" / "operative_config.gin").read_text().count("Channels.use_flow") == 1


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(sim_data, tmp_path, monkeypatch):
    real = losses.motion_hmr_losses

    def poisoned(labels, outputs, **kwargs):
        terms = real(labels, outputs, **kwargs)
        # NaN from the second step's data on (examples 2, 3 with batch 2): the first step's checkpoint is good.
        terms["total"] = terms["total"] + tf.where(labels["index"][0] >= 2, np.nan, 0.0)
        return terms

    monkeypatch.setattr(losses, "motion_hmr_losses", poisoned)
    with pytest.raises(train.NonFiniteLossError, match=r"step 2.*ckpt-1"):
        _run(tmp_path / "nan", sim_data, 4)
    assert tf.train.latest_checkpoint(str(tmp_path / "nan" / "checkpoints")).endswith("ckpt-1")


def test_logged_learning_rate_is_the_constant_or_the_schedules_value_under_a_strategy():
    import keras
    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope():
        constant = keras.optimizers.Adam(3e-4)
        scheduled = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, 10, alpha=0.1))
        variable = tf.Variable(1.0)
        constant.build([variable])
        scheduled.build([variable])
    scheduled.iterations.assign(5)
    assert train._current_lr(constant) == pytest.approx(3e-4)
    # Cosine decay halfway: alpha + (1 - alpha) * (1 + cos(pi / 2)) / 2 = 0.55 of the base rate.
    assert train._current_lr(scheduled) == pytest.approx(1e-3 * 0.55, rel=1e-5)
