"""The trainer, its run directory and the gin row files, at tiny size on simulator data."""
import dataclasses
import functools
import json
import re
from pathlib import Path

import gin
import numpy as np
import pytest
import tensorflow as tf

from mhr_tf import gin_config, losses, paper
from mhr_tf.data.preprocessing import Augmentation, Channels, FlowSettings, Preprocessing
from mhr_tf.model import motion_hmr
from mhr_tf.training import loop, run_dir
from tests.helpers import background_windows_for

GIN_DIR = gin_config.GIN_DIR
GIN_FILES = sorted(p.name for p in GIN_DIR.glob("*.gin"))
FRAMES = 5
TINY = ["ModelConfig.architecture = 'resnet_tiny'", "ModelConfig.lstm_units = 8", "ModelConfig.head_units = 8",
        "ModelConfig.regressor_units = 8", "ModelConfig.adversary_units = 8", "Preprocessing.crop_size = 32",
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


def test_every_row_of_the_paper_has_its_gin_file():
    assert {f"{run}.gin" for run in paper.runs()} | {"base.gin", "demo.gin"} <= set(GIN_FILES)


@pytest.mark.parametrize("run", paper.runs())
def test_row_file_header_states_the_papers_number(run):
    first = (GIN_DIR / f"{run}.gin").read_text().splitlines()[0]
    for row in paper.rows_of(run)[:1]:
        assert f"{row.pa_mpjpe_mm:.1f} mm" in first and row.table in first, first


@pytest.mark.parametrize("name", GIN_FILES)
def test_gin_file_parses_and_builds_its_contract_and_model(name):
    gin_config.parse([f"gin/{name}"], TINY)
    stem = name[:-4]
    pre = Preprocessing()
    if stem in EXPECTED_CHANNELS:
        assert (pre.channels.use_rgb, pre.channels.use_flow, pre.channels.use_keypoints) == EXPECTED_CHANNELS[stem]
    if "no_occlusion" in stem:
        assert not pre.augmentation.slic_occluders and pre.augmentation.total_occlusion_probability == 0
    assert pre.augmentation.track_camera == ("no_tracking" not in stem)
    assert pre.augmentation.static_background == stem.startswith("static_bg")
    if stem in EXPECTED_FRAMES:
        assert (pre.num_frames, gin.query_parameter("train.batch_size")) == EXPECTED_FRAMES[stem]
    dann = gin_config.bound("train.dann_weight")
    assert dann == (stem == "rgb_dann")
    model = loop.ModelConfig().build(32, pre.channels.names, num_pairs=3,
                                     dann_weight=gin.query_parameter("train.dann_weight") if dann else None)
    outputs = model({"inputs": tf.zeros([1, 3, 32, 32, pre.channels.count])})
    assert outputs["current/joints3d"].shape == (1, 3, 14, 3)
    assert ("domain/logits" in outputs) == dann


@pytest.mark.parametrize("binding", ["train.num_frames = 8", "train.crop_size = 64", "train.dann = True",
                                     "make_dataset.flow_backend = 'dis'", "ModelConfig.crop_size = 64"])
def test_a_binding_without_a_home_is_refused_at_parse_time(binding):
    with pytest.raises(ValueError, match=re.escape(binding.split("=")[0].strip().split(".")[-1])):
        gin_config.parse(["gin/base.gin"], [binding])


def test_a_binding_the_caller_overrides_is_refused_naming_it():
    gin_config.parse(["gin/base.gin"], ["train.data_service = 'grpc://127.0.0.1:5000'"])
    with pytest.raises(gin_config.DeadBindingError, match=r"train.data_service = 'grpc://127.0.0.1:5000'"):
        gin_config.call(functools.partial(loop.train, "unused"), "train", data_service="grpc://127.0.0.1:6000")


def _run(model_dir, sim_data, steps, extra=()):
    gin.clear_config()
    background_windows_for(sim_data["backgrounds"], FRAMES)
    gin_config.parse(["gin/demo.gin"], TINY + [f"Preprocessing.num_frames = {FRAMES}", "train.batch_size = 2",
                                                "train.checkpoint_every = 1"] + list(extra))
    return loop.train(model_dir, surreal_root=sim_data["surreal"], background_root=sim_data["backgrounds"],
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
        np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)
    assert int(resumed["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 3
    assert int(resumed["next_example/.ATTRIBUTES/VARIABLE_VALUE"]) == 6  # 3 steps x 2 clips, no bad samples
    assert (tmp_path / "resumed" / "operative_config.gin").read_text().count("Channels.use_flow") == 1


def test_run_directory_holds_the_contract_and_model_that_rebuild_the_network(sim_data, tmp_path):
    _run(tmp_path / "run", sim_data, 1, ["FlowSettings.backend = 'tf_tvl1'", "Channels.use_rgb = True"])
    pre, config = run_dir.read_run(tmp_path / "run")
    assert pre == Preprocessing(num_frames=FRAMES, crop_size=32, channels=Channels(True, True, True),
                                flow=dataclasses.replace(Preprocessing().flow, backend="tf_tvl1"))
    assert config == motion_hmr.ModelConfig(architecture="resnet_tiny", lstm_units=8, head_units=8,
                                            regressor_units=8, adversary_units=8)
    content = json.loads((tmp_path / "run" / "preprocessing.json").read_text())
    assert content["channel_groups"] == ["rgb", "flow", "heatmaps", "occlusion"]
    assert content["box"]["joints"] == list(pre.box.joints)


def test_resuming_with_another_contract_is_refused_naming_the_change(sim_data, tmp_path):
    _run(tmp_path / "run", sim_data, 1)
    with pytest.raises(run_dir.RunDirError, match=r"crop_size: 32 -> 48"):
        _run(tmp_path / "run", sim_data, 2, ["Preprocessing.crop_size = 48"])


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(sim_data, tmp_path, monkeypatch):
    real = losses.motion_hmr_losses

    def poisoned(labels, outputs, **kwargs):
        terms = real(labels, outputs, **kwargs)
        # NaN from the second step's data on (examples 2, 3 with batch 2): the first step's checkpoint is good.
        terms["supervised"] = terms["supervised"] + tf.where(labels["index"][0] >= 2, np.nan, 0.0)
        return terms

    monkeypatch.setattr(losses, "motion_hmr_losses", poisoned)
    with pytest.raises(loop.NonFiniteLossError, match=r"step 2.*ckpt-1"):
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
    assert loop._current_lr(constant) == pytest.approx(3e-4)
    # Cosine decay halfway: alpha + (1 - alpha) * (1 + cos(pi / 2)) / 2 = 0.55 of the base rate.
    assert loop._current_lr(scheduled) == pytest.approx(1e-3 * 0.55, rel=1e-5)


def test_skeleton_picture_shows_the_heatmaps_of_the_contracts_layout():
    pre = Preprocessing(crop_size=16, channels=Channels(True, False, True))
    inputs = np.zeros((1, 16, 16, pre.channels.count), np.float32)
    inputs[0, 4, 5, 3 + 7] = 1.0  # heatmap 7, just after the 3 RGB channels
    picture = loop.skeleton_image(inputs, np.full((1, 14, 2), -1.0), pre)
    assert picture[0, 4, 5, 0] == 255 and picture[0, 4, 5, 1] == 0
    assert picture[0, 10, 10].tolist() == [0, 0, 0]
    assert picture[0, 0, 0].tolist() == [0, 255, 0]  # the predicted joints at the corner


def test_skeleton_picture_reads_the_network_groups_when_the_model_computes_the_flow():
    # The wire is pairs (6) + heatmaps (12) + indicator: heatmap 7 sits at 6 + 7 there, at 3 + 7 in the network's
    # groups (flow 3 + heatmaps); the flat pairs give zero flow, so only the heatmap and the joints are drawn.
    pre = Preprocessing(crop_size=16, channels=Channels(False, True, True),
                        flow=FlowSettings(backend="tf_tvl1", placement="model"))
    inputs = np.zeros((1, 16, 16, pre.wire_channels), np.float32)
    inputs[0, 4, 5, 6 + 7] = 1.0
    picture = loop.skeleton_image(inputs, np.full((1, 14, 2), -1.0), pre)
    assert picture[0, 4, 5].tolist() == [255, 0, 0]
    assert picture[0, 10, 10].tolist() == [0, 0, 0]


def test_contract_rules_round_trip_through_json_exactly():
    pre = Preprocessing(num_frames=12, crop_size=96, channels=Channels(True, False, True),
                        augmentation=Augmentation(leg_unhide_probability=0.25), confidence=0.3, min_keypoints=5)
    assert Preprocessing.from_json(json.loads(json.dumps(pre.to_json()))) == pre
