"""The TF-only online pipeline over the TFDS builders, locally and on a tf.data service of two worker processes.

The raw fields are checked against the stored windows with float64 numpy references written here (sub-window
slicing, the camera shift re-integrated about the sub-window's centre, the person-in-frame rule). The service test
starts a dispatcher and two workers (`scripts/data_service.py`) on 127.0.0.1, trains a few steps from them, kills
one worker mid-run, and checks training goes on and what it received.
"""
import collections
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import gin
import numpy as np
import pytest
import tensorflow as tf

tfds = pytest.importorskip("tensorflow_datasets")

from mhr_tf import datasets  # noqa: E402
from mhr_tf.data import pipeline, service  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
STORED_T = 8  # frames per stored window (both builders); conftest's clips have 10 (SURREAL) and 12 (backgrounds)
T = 5  # frames per training clip: a random 5-frame sub-window of each stored one
CROP = 32
STARTUP_TIMEOUT_S = 60
NO_FLOW = pipeline.Channels(use_flow=False)  # the flow backend has its own tests; these test the wiring


@pytest.fixture(scope="module")
def data_dir(sim_data, tmp_path_factory):
    manual = tmp_path_factory.mktemp("manual")
    for folder, kind in (("sim_surreal", "surreal"), ("sim_backgrounds", "backgrounds")):
        (manual / folder).symlink_to(sim_data[kind], target_is_directory=True)
    out = tmp_path_factory.mktemp("tfds")
    datasets.build("surreal_clips/sim_t8", out, manual, use_beam=False,
                   config_overrides={"num_frames": str(STORED_T)})
    datasets.build("background_clips/sim_t8", out, manual, use_beam=False,
                   config_overrides={"num_frames": str(STORED_T), "slic_downsample": "2"})
    return out


def _stored(data_dir, dataset):
    builder = tfds.builder_from_directory(str(service.find_config(data_dir, dataset, T)))
    return list(tfds.as_numpy(builder.as_dataset(split="train")))


def _first_index(values: np.ndarray, window: np.ndarray) -> int:
    """Where `window` starts along axis 0 of `values` (exactly one place)."""
    starts = [s for s in range(len(values) - len(window) + 1) if np.array_equal(values[s:s + len(window)], window)]
    assert len(starts) == 1, starts
    return starts[0]


def test_find_config_picks_the_built_config_and_names_what_is_missing(data_dir):
    assert service.find_config(data_dir, "surreal_clips", T).parent.name == "sim_t8_num_frames8"
    with pytest.raises(FileNotFoundError, match=r"windows of >= 9 frames.*sim_t8_num_frames8"):
        service.find_config(data_dir, "surreal_clips", STORED_T + 1)


def test_raw_example_is_a_sub_window_with_the_shift_about_its_centre(data_dir):
    person, scene = _stored(data_dir, "surreal_clips")[0], _stored(data_dir, "background_clips")[0]
    for index in range(4):
        raw = {k: v.numpy() for k, v in service.raw_example(
            {k: tf.constant(v) for k, v in person.items()}, {k: tf.constant(v) for k, v in scene.items()},
            tf.constant(index, tf.int64), seed=3, num_frames=T).items()}
        spec = pipeline._source_spec(T)
        assert {k: (v.dtype, v.shape) for k, v in raw.items()} == {
            k: (d.as_numpy_dtype, s) for k, (d, s) in spec.items()}
        start = _first_index(person["joints3d_cam"], raw["joints3d_cam"])
        np.testing.assert_array_equal(raw["person_rgb"], person["frames"][start:start + T])
        np.testing.assert_array_equal(raw["segm"], person["segm"][start:start + T])
        np.testing.assert_array_equal(raw["betas"], person["betas"])
        bg_start = _first_index(scene["superpixels"].astype(np.int32), raw["superpixels"])
        np.testing.assert_array_equal(raw["background"], scene["frames"][bg_start:bg_start + T])
        # App. A: camera shift relative to the clip's centre frame, float64 reference
        steps = scene["median_flow"][bg_start:bg_start + T - 1].astype(np.float64)
        cumulative = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
        np.testing.assert_allclose(raw["camera_shift"], cumulative - cumulative[T // 2], atol=1e-5)
        tracked = person["joints14_2d"][start:start + T] + np.round(cumulative - cumulative[T // 2])[:, None]
        inside = ((tracked[..., 0] >= 0) & (tracked[..., 0] < 320) & (tracked[..., 1] >= 0) & (tracked[..., 1] < 240))
        assert bool(raw["ok"]) == bool((inside.sum(axis=1) >= 2).all())


def test_local_dataset_is_reproducible_and_differs_by_seed(data_dir):
    ds = service.make_service_dataset(data_dir, T, 2, CROP, 0, NO_FLOW)
    (features_a, labels), (features_b, _) = next(iter(ds)), next(iter(ds))  # two fresh iterators
    a, b = features_a["inputs"].numpy(), features_b["inputs"].numpy()
    c = next(iter(service.make_service_dataset(data_dir, T, 2, CROP, 1, NO_FLOW)))[0]["inputs"].numpy()
    assert a.shape == (2, T - 1, CROP, CROP, NO_FLOW.count)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(labels["index"], [0, 1])
    np.testing.assert_array_equal(labels["stream"], [0, 0])  # local runs use stream 0


def test_python_flow_backends_are_refused():
    with pytest.raises(ValueError, match="'dis' is a Python .*tf.data service cannot run"):
        service.make_service_dataset("/nonexistent", T, 2, CROP, 0, pipeline.Channels(), flow_backend="dis")


# --------------------------------------------------------------------------------------------------------------------
# Two worker processes on 127.0.0.1

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "scripts" / "data_service.py"), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _wait_for_line(process: subprocess.Popen, text: str, timeout: float) -> None:
    lines = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines or text not in lines[0]:
        raise TimeoutError(f"{process.args}: no '{text}' line within {timeout} s (got {lines})")


@pytest.mark.slow
def test_training_from_two_workers_goes_on_when_one_is_killed(data_dir, tmp_path, monkeypatch):
    from mhr_tf import train
    port = _free_port()
    processes = []
    received = []  # (time, stream keys, example indices) of every batch the trainer took
    kill_after = {"batches": None}

    def record(streams, indices):
        received.append((time.time(), tuple(int(s) for s in streams), tuple(int(i) for i in indices)))
        # Kill the first worker once both have delivered (bounded: after 6 batches at the latest).
        if kill_after["batches"] is None and (len({r[1][0] for r in received}) >= 2 or len(received) >= 6):
            processes[1].kill()
            kill_after["batches"] = len(received)
        return np.int32(0)

    make = service.make_service_dataset

    def recorded(*args, **kwargs):
        # After `distribute`, in the trainer process: a Python step is fine here.
        def tap(features, labels):
            done = tf.numpy_function(record, [labels["stream"], labels["index"]], tf.int32)
            with tf.control_dependencies([done]):
                return {"inputs": tf.identity(features["inputs"])}, labels
        return make(*args, **kwargs).map(tap)

    monkeypatch.setattr(service, "make_service_dataset", recorded)
    try:
        processes.append(_start("dispatcher", "--port", str(port), "--worker_timeout_ms", "2000"))
        for _ in range(2):
            processes.append(_start("worker", "--dispatcher", f"127.0.0.1:{port}", "--host", "127.0.0.1",
                                    "--heartbeat_interval_ms", "500"))
        for process, text in zip(processes, ("dispatcher serving", "worker of", "worker of")):
            _wait_for_line(process, text, STARTUP_TIMEOUT_S)
        train.parse_gin([], [
            "build_model.architecture = 'resnet_tiny'", "build_model.lstm_units = 16", "build_model.head_units = 16",
            "build_model.regressor_units = 16", "Channels.use_flow = False", "make_strategy.kind = 'default'"])
        steps = 12
        result = train.train(tmp_path / "run", num_steps=steps, batch_size=2, num_frames=T, crop_size=CROP,
                             checkpoint_every=steps, summary_every=steps, image_summary_every=0, validate_every=0,
                             progress=False, data_service=f"grpc://127.0.0.1:{port}", tfds_data_dir=data_dir)
    finally:
        gin.clear_config()
        for process in processes:
            process.kill()
            process.wait(timeout=10)
    streams = collections.Counter(r[1][0] for r in received)
    before = collections.Counter(r[1][0] for r in received[:kill_after["batches"]])
    after = collections.Counter(r[1][0] for r in received[kill_after["batches"]:])
    print(f"received {len(received)} batches: per worker stream {dict(streams)}; before the kill {dict(before)}, "
          f"after {dict(after)}")
    assert np.isfinite(result["total"])
    assert len(received) >= steps and kill_after["batches"] is not None and kill_after["batches"] < steps
    assert len(before) == 2, "both workers fed the run before one was killed"
    # Every batch is one worker's (batching happens on the worker), the two streams are different examples.
    assert all(len(set(r[1])) == 1 for r in received)
    # Training went on after the kill, fed by the survivor: the last batches all come from one stream.
    assert len(received) - kill_after["batches"] >= 3
    assert len({r[1][0] for r in received[-3:]}) == 1
