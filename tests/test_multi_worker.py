"""Multi-worker training: two worker processes on 127.0.0.1 under MultiWorkerMirroredStrategy (TF_CONFIG), compared
with one process training on the same global batch.

Run as a script, this file is one worker: `python tests/test_multi_worker.py OUT_PREFIX -- <scripts/train.py args>`
runs scripts/train.py's main with TF_CONFIG from the environment, then saves the worker's final weights to
OUT_PREFIX.npz and the example indices each step trained on (the batch contract's `labels["index"]`) to
OUT_PREFIX.index.
"""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import background_windows_for

# Two TensorFlow processes plus one in-process run: 6.5 min measured on the shared 2-core machine under load ~14.
pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
GLOBAL_BATCH = 2
# The tiny run of the brief; dropout off because each worker draws dropout masks for its own half of the batch, which
# is right in distribution but not bit-equal to the single process's masks over the whole batch.
FRAMES = 5
BINDINGS = ["ModelConfig.architecture = 'resnet_tiny'", "ModelConfig.lstm_units = 8", "ModelConfig.head_units = 8",
            "ModelConfig.regressor_units = 8", "ModelConfig.dropout = 0.0", "Preprocessing.crop_size = 32",
            f"Preprocessing.num_frames = {FRAMES}", f"train.batch_size = {GLOBAL_BATCH}", "train.checkpoint_every = 1",
            "train.validate_every = 0", "train.image_summary_every = 0", "train.summary_every = 1",
            "train.progress = False"]
# Float32 gradients all-reduced across workers are summed in another order than one process's batch mean. The
# absolute part is for the conv biases ahead of BatchNorm: their true gradient is 0, so Adam's normalized step follows
# float rounding noise; 2e-5 is 4% of one Adam step at demo.gin's learning rate 5e-4.
RTOL, ATOL = 1e-5, 2e-5
WORKER_TIMEOUT_S = 300  # both workers together; ~60 s on an idle 2-core machine
STEPS = 2


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _run_workers(model_dir: Path, out_dir: Path, sim_data, steps: int) -> list[Path]:
    """Two workers of one cluster train `steps` steps into model_dir; returns their output prefixes."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    prefixes = [out_dir / f"worker{i}_steps{steps}" for i in range(2)]
    args = ["--gin_file", "gin/demo.gin", "--model_dir", str(model_dir), "--gin_param",
            "make_strategy.kind = 'multi_worker'", "--gin_param", f"train.num_steps = {steps}",
            "--gin_param", f"train.surreal_root = '{sim_data['surreal']}'",
            "--gin_param", f"train.background_root = '{sim_data['backgrounds']}'"]
    for binding in BINDINGS:
        args += ["--gin_param", binding]
    procs = []
    try:
        for i, prefix in enumerate(prefixes):
            env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
                       TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                       PYTHONPATH=str(REPO))
            procs.append(subprocess.Popen([sys.executable, __file__, str(prefix), "--", *args], cwd=REPO, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        for i, proc in enumerate(procs):
            try:
                output, _ = proc.communicate(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
                pytest.fail(f"worker {i} still running after {WORKER_TIMEOUT_S} s:\n{output[-4000:]}")
            assert proc.returncode == 0, f"worker {i} failed:\n{output[-4000:]}"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return prefixes


def _single_process(model_dir: Path, sim_data, steps: int) -> list[np.ndarray]:
    """The same run in this process on one replica (the default 'mirrored' strategy); its final weights."""
    import gin
    from mhr_tf import gin_config
    from mhr_tf.model import motion_hmr
    from mhr_tf.training import loop
    built = []

    def capture(*args, **kwargs):
        built.append(real(*args, **kwargs))
        return built[-1]

    real, motion_hmr.build_model = motion_hmr.build_model, capture
    try:
        gin.clear_config()
        gin_config.parse(["gin/demo.gin"], BINDINGS)
        loop.train(model_dir, surreal_root=sim_data["surreal"], background_root=sim_data["backgrounds"],
                   num_steps=steps)
    finally:
        motion_hmr.build_model = real
        gin.clear_config()
    return built[-1].get_weights()


def _restored_weights(checkpoint: str) -> list[np.ndarray]:
    """A fresh single-process model restored from a checkpoint file."""
    import tensorflow as tf
    from mhr_tf.training import run_dir
    pre, config = run_dir.read_run(Path(checkpoint).parent.parent)
    model = config.build(pre.crop_size, pre.channels.names, num_pairs=pre.num_pairs, pretrained=False)
    tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()
    return model.get_weights()


def _weights(prefix: Path) -> list[np.ndarray]:
    with np.load(f"{prefix}.npz") as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def _indices_per_step(prefix: Path) -> list[set[int]]:
    return [set(json.loads(line)) for line in Path(f"{prefix}.index").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(sim_data, tmp_path_factory):
    """Two workers train STEPS steps into one model_dir; one process trains the same STEPS steps into another."""
    root = tmp_path_factory.mktemp("multi_worker")
    model_dir = root / "workers"
    background_windows_for(sim_data["backgrounds"], FRAMES)
    return {"model_dir": model_dir, "workers": _run_workers(model_dir, root, sim_data, STEPS),
            "single": _single_process(root / "single", sim_data, STEPS)}


def _assert_weights_close(actual, expected, rtol=RTOL, atol=ATOL):
    assert len(actual) == len(expected) > 20
    worst = max(float(np.max(np.abs(a - e))) for a, e in zip(actual, expected))
    print(f"largest weight difference: {worst:.3g}")
    for i, (a, e) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=f"weight {i}")


def test_both_workers_hold_identical_weights(runs):
    first, second = (_weights(p) for p in runs["workers"])
    assert len(first) == len(second) > 20
    for i, (a, b) in enumerate(zip(first, second)):
        np.testing.assert_array_equal(a, b, err_msg=f"weight {i}")


def test_workers_match_one_process_with_the_same_global_batch(runs):
    _assert_weights_close(_weights(runs["workers"][0]), runs["single"])


def test_workers_train_on_disjoint_halves_of_the_single_process_batches(runs):
    # One process's step s trains on examples {2s, 2s + 1} (labels["index"], no bad samples in the fixture).
    per_worker = [_indices_per_step(prefix) for prefix in runs["workers"]]
    assert all(len(steps) == STEPS and all(len(s) == GLOBAL_BATCH // 2 for s in steps) for steps in per_worker)
    for step, (a, b) in enumerate(zip(*per_worker)):
        assert not a & b and a | b == {2 * step, 2 * step + 1}, (step, a, b)


def test_only_the_chief_writes_the_model_dir(runs):
    model_dir = runs["model_dir"]
    assert sorted(p.name for p in model_dir.iterdir()) == ["checkpoints", "model.json", "operative_config.gin",
                                                           "preprocessing.json", "train"]
    assert len(list((model_dir / "train").iterdir())) >= 1  # the chief's TensorBoard events (one per launch)
    assert "make_strategy.kind = 'multi_worker'" in (model_dir / "operative_config.gin").read_text()


def test_chief_checkpoint_restored_in_one_process_equals_the_workers_weights(runs):
    import tensorflow as tf
    latest = tf.train.latest_checkpoint(str(runs["model_dir"] / "checkpoints"))
    assert latest.endswith(f"ckpt-{STEPS}")
    reader = tf.train.load_checkpoint(latest)
    assert int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")) == STEPS
    # A resumed run starts past both workers' examples (0 .. 2 * STEPS - 1), not only past the chief's.
    assert int(reader.get_tensor("next_example/.ATTRIBUTES/VARIABLE_VALUE")) == GLOBAL_BATCH * STEPS
    _assert_weights_close(_restored_weights(latest), _weights(runs["workers"][1]), rtol=0, atol=0)


def _worker_main(argv: list[str]) -> int:
    """One worker: scripts/train.py's main, recording the model it built and the examples each step used."""
    prefix, train_args = argv[0], argv[argv.index("--") + 1:]
    import importlib.util

    import tensorflow as tf
    from mhr_tf import losses
    from mhr_tf.model import motion_hmr
    spec = importlib.util.spec_from_file_location("train_script", REPO / "scripts" / "train.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    built, real_build, real_losses = [], motion_hmr.build_model, losses.motion_hmr_losses

    def capture(*args, **kwargs):
        built.append(real_build(*args, **kwargs))
        return built[-1]

    def recording_losses(labels, outputs, **kwargs):
        # One JSON list per step and replica, written by the graph as the step runs.
        printed = tf.strings.reduce_join(tf.strings.as_string(labels["index"]), separator=",")
        tf.print(tf.strings.join(["[", printed, "]"]), output_stream=f"file://{prefix}.index")
        return real_losses(labels, outputs, **kwargs)

    motion_hmr.build_model, losses.motion_hmr_losses = capture, recording_losses
    status = script.main(train_args)
    np.savez(f"{prefix}.npz", *built[-1].get_weights())
    return status


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
