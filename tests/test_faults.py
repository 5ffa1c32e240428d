"""Faults a user meets while training, each injected for real and seen the way the user sees it: through
scripts/train.py (in a subprocess when the fault is about how the process ends, else its `main` in-process), one line
on stderr, exit status 2 (130 after Ctrl-C), no traceback.

    every SURREAL video cut: the run stops  test_every_sample_bad_stops_in_one_line_naming_a_broken_file
      ... 77k warnings                      test_bad_sample_warnings_are_the_first_few_then_one_line_per_thousand
      ... Ctrl-C ignored                    test_ctrl_c_while_no_sample_is_usable_stops_at_once
                                            test_ctrl_c_during_training_saves_the_last_step_and_data_position
                                            test_second_ctrl_c_ends_the_process_at_once
    a text or truncated _info.mat           test_unreadable_info_mats_are_skipped_in_one_warning_naming_them
                                            test_no_readable_info_mat_is_one_line_naming_the_root
    NaN in joints3D                         test_nan_joints3d_met_by_the_decoder_is_reported_as_non_finite
    --model_dir not writable                test_unwritable_model_dir_is_one_line_naming_it
    full disk, stale ckpt-N_temp folders    test_full_disk_refuses_then_fails_a_save_keeping_the_previous_checkpoint
    NaN loss, then "FATAL: exception not    test_nan_loss_ends_in_one_line_without_an_abort
      rethrown" at exit
    wrong or empty SURREAL root             test_wrong_or_empty_surreal_root_is_one_line_naming_it
    kill -9 anywhere (slow)                 test_killed_at_random_points_then_rerun_ends_bit_identical
"""
import importlib.util
import logging
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gin
import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from mhr_tf.data import sources, surreal_manifest
from mhr_tf.data.preprocessing import Preprocessing
from mhr_tf.training import inputs, loop
from tests.helpers import background_windows_for
from tests.test_train import FRAMES, TINY

REPO = Path(__file__).resolve().parent.parent
TRAIN_SCRIPT = REPO / "scripts" / "train.py"
UNLIMITED_BUDGET = ["BadSampleBudget.max_consecutive = 1000000000", "BadSampleBudget.max_fraction = 1.0"]
RUN_TIMEOUT_S = 300  # one tiny run: ~20 s on an idle 2-core machine
STOP_TIMEOUT_S = 60  # from Ctrl-C to the process gone: a step, a save and the interpreter's exit
# The kill -9 test: where the kills land comes from this seed; the run is long enough for three kills in training.
KILL_SEED = 20260607
KILL_STEPS = 8


def _bindings(surreal_root, background_root, steps: int, extra=()) -> list[str]:
    return TINY + [f"Preprocessing.num_frames = {FRAMES}", "train.batch_size = 2", "train.checkpoint_every = 1",
                   f"train.surreal_root = '{surreal_root}'", f"train.background_root = '{background_root}'",
                   f"train.num_steps = {steps}", *extra]


def _args(model_dir, surreal_root, background_root, steps: int, extra=()) -> list[str]:
    """scripts/train.py's arguments for a tiny run on simulator data, a checkpoint every step."""
    params = _bindings(surreal_root, background_root, steps, extra)
    return ["--gin_file", "gin/demo.gin", "--model_dir", str(model_dir),
            *[arg for param in params for arg in ("--gin_param", param)]]


def _command(*args, **kwargs) -> list[str]:
    return [sys.executable, str(TRAIN_SCRIPT), *_args(*args, **kwargs)]


def _train(*args, preexec_fn=None, env=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(_command(*args, **kwargs), cwd=REPO, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, preexec_fn=preexec_fn, env=env)


def _start(log: Path, *args, env=None, **kwargs) -> subprocess.Popen:
    """scripts/train.py in the background, stdout and stderr into `log` (a pipe nobody reads could fill)."""
    with open(log, "w") as out:
        return subprocess.Popen(_command(*args, **kwargs), cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                text=True, env=env)


def _error_line(done: subprocess.CompletedProcess) -> str:
    """The run's one error: exit status 2, the last line on stderr and the only one starting "error:", no traceback
    and no abort (TensorFlow's own start-up lines may come before it)."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "FATAL" not in done.stderr, done.stderr[-3000:]
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], done.stderr[-3000:]
    return lines[-1]


def _wait_for(condition, proc: subprocess.Popen, log: Path, timeout: float = RUN_TIMEOUT_S,
              poll: float = 0.05) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"exited with {proc.returncode} first:\n{log.read_text()[-3000:]}"
        assert time.time() < deadline, f"timed out:\n{log.read_text()[-3000:]}"
        time.sleep(poll)


def _stopped(proc: subprocess.Popen, log: Path) -> tuple[int, float]:
    """(exit status, seconds) of a process asked to stop."""
    began = time.time()
    try:
        code = proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"still running {STOP_TIMEOUT_S} s after Ctrl-C:\n{log.read_text()[-3000:]}")
    return code, time.time() - began


def _checkpoint(model_dir) -> dict[str, np.ndarray]:
    """Every tensor of the newest checkpoint of a run."""
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(Path(model_dir) / "checkpoints")))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


@pytest.fixture
def backgrounds(sim_data) -> Path:
    return background_windows_for(sim_data["backgrounds"], FRAMES)


@pytest.fixture
def train_main(monkeypatch):
    """scripts/train.py's `main`, run in this process (for faults met before training ends the process)."""
    monkeypatch.delenv("OPENCV_FFMPEG_LOGLEVEL", raising=False)  # main sets it; put it back afterwards
    spec = importlib.util.spec_from_file_location("train_script", TRAIN_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    gin.clear_config()
    yield script.main
    gin.clear_config()


def _one_error_line(code: int, stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], stderr
    return lines[-1]


def _copy(root: Path, to: Path) -> Path:
    shutil.copytree(root, to)
    return to


# --------------------------------------------------------------------------------------------------------------------
# Every sample bad

@pytest.fixture
def broken_videos(sim_data, tmp_path) -> Path:
    """A SURREAL root whose every video is cut to its first 100 bytes (the _info.mat files are fine, so the manifest
    lists every clip and the decoder fails on each)."""
    root = _copy(sim_data["surreal"], tmp_path / "broken_videos")
    for video in root.glob("train/run*/*/*.mp4"):
        video.write_bytes(video.read_bytes()[:100])
    return root


def test_every_sample_bad_stops_in_one_line_naming_a_broken_file(broken_videos, backgrounds, tmp_path):
    done = _train(tmp_path / "run", broken_videos, backgrounds, 5)
    line = _error_line(done)
    assert line.startswith("error: bad-sample budget exceeded at step 0: 201 bad samples in a row"), line
    assert "201 × unreadable file" in line and str(broken_videos / "train") in line, line
    assert "fix or remove the broken files" in line, line
    assert done.stderr.count("skipping bad sample") == loop.BAD_SAMPLE_LOG_FIRST, done.stderr[-3000:]
    assert "moov atom" not in done.stderr  # FFmpeg's own line per broken video


def test_bad_sample_warnings_are_the_first_few_then_one_line_per_thousand(caplog):
    bad = sources.BadSamples()
    filter_ = loop._BadSampleLog(bad, first=5, every=1000)
    sources.log.addFilter(filter_)
    try:
        with caplog.at_level(logging.WARNING, logger=sources.log.name):
            for i in range(2010):
                bad.record(f"clip{i}.mp4", sources.REASONS[0], "UnreadableVideoError: cut")
    finally:
        sources.log.removeFilter(filter_)
    lines = [r.getMessage() for r in caplog.records if r.name == sources.log.name]
    assert len(lines) == 5 + 2, lines
    assert lines[4].endswith("(from now on one line per 1000 bad samples)")
    assert lines[5] == ("1005 bad samples skipped so far (1005 × unreadable file); the latest: clip1004.mp4: "
                        "UnreadableVideoError: cut")
    assert lines[6].startswith("2005 bad samples skipped so far")
    assert bad.count == 2010  # every one is counted


# --------------------------------------------------------------------------------------------------------------------
# Ctrl-C

def test_ctrl_c_while_no_sample_is_usable_stops_at_once(broken_videos, backgrounds, tmp_path):
    # No budget: next(iterator) would wait inside tf.data forever, where Python never sees a signal.
    log = tmp_path / "log"
    proc = _start(log, tmp_path / "run", broken_videos, backgrounds, 5, extra=UNLIMITED_BUDGET)
    _wait_for(lambda: "skipping bad sample" in log.read_text(), proc, log)
    time.sleep(1.0)  # well inside the wait for a usable sample
    proc.send_signal(signal.SIGINT)
    code, seconds = _stopped(proc, log)
    text = log.read_text()
    assert code == 130, text[-3000:]
    assert "Traceback" not in text and "FATAL" not in text, text[-3000:]
    assert text.strip().splitlines()[-1] == (
        "interrupted before the first step: nothing to save; rerun the same command to start"), text[-3000:]


def test_ctrl_c_during_training_saves_the_last_step_and_data_position(sim_data, backgrounds, tmp_path):
    log, run = tmp_path / "log", tmp_path / "run"
    proc = _start(log, run, sim_data["surreal"], backgrounds, 1000)
    _wait_for(lambda: (run / "checkpoints" / "ckpt-2.index").exists(), proc, log)
    proc.send_signal(signal.SIGINT)  # most likely inside a step or a save, in TensorFlow
    code, seconds = _stopped(proc, log)
    text = log.read_text()
    assert code == 130, text[-3000:]
    assert "Traceback" not in text and "FATAL" not in text, text[-3000:]
    last = text.strip().splitlines()[-1]
    found = re.fullmatch(r"interrupted at step (\d+): saved (\S+) \(the data position too: next example (\d+)\); "
                         r"rerun the same command to resume", last)
    assert found, text[-3000:]
    step = int(found.group(1))
    assert found.group(2) == str(run / "checkpoints" / f"ckpt-{step}") == tf.train.latest_checkpoint(
        str(run / "checkpoints"))
    saved = _checkpoint(run)
    assert int(saved["step/.ATTRIBUTES/VARIABLE_VALUE"]) == step >= 2
    # Batch 2, no bad sample in the simulator's clips: step s trained examples 0 .. 2s - 1.
    assert int(saved["next_example/.ATTRIBUTES/VARIABLE_VALUE"]) == int(found.group(3)) == 2 * step


SECOND_CTRL_C = """
import os, signal, sys, time
from mhr_tf.training import loop
with loop._StopRequest() as stop:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)  # the handler runs between two bytecodes of the main thread
    assert stop.requested and signal.getsignal(signal.SIGINT) == signal.SIG_DFL
    print("first Ctrl-C: stop requested", flush=True)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(10)
print("still alive")
"""


def test_second_ctrl_c_ends_the_process_at_once():
    done = subprocess.run([sys.executable, "-c", SECOND_CTRL_C], cwd=REPO, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    assert done.returncode == -signal.SIGINT, done.stderr[-3000:]
    assert done.stdout == "first Ctrl-C: stop requested\n"
    assert "stopping and saving a checkpoint" in done.stderr and "Ctrl-C again stops at once" in done.stderr


def test_stop_request_puts_the_previous_handler_back_and_leaves_an_ignored_sigint_ignored():
    previous = signal.getsignal(signal.SIGINT)
    with loop._StopRequest() as stop:
        assert signal.getsignal(signal.SIGINT) == stop._handle
    assert signal.getsignal(signal.SIGINT) is previous
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under nohup
    try:
        with loop._StopRequest():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------------------------------------------------
# Unreadable and non-finite SURREAL files

def _nan_joints3d(info: Path) -> None:
    fields = {k: v for k, v in scipy.io.loadmat(info).items() if not k.startswith("__")}
    fields["joints3D"] = fields["joints3D"].astype(np.float64)
    fields["joints3D"][0, 0, 2] = np.nan
    scipy.io.savemat(info, fields, do_compression=True)


def test_unreadable_info_mats_are_skipped_in_one_warning_naming_them(sim_data, tmp_path, caplog):
    root = _copy(sim_data["surreal"], tmp_path / "surreal")
    infos = sorted(root.glob("train/run*/*/*_info.mat"))
    infos[0].write_text("MATLAB 5.0 MAT-file? no: a text file\n")
    infos[1].write_bytes(infos[1].read_bytes()[:300])  # truncated
    _nan_joints3d(infos[2])
    with caplog.at_level(logging.WARNING, logger="mhr_tf.data.surreal"):
        source = inputs.make_source("files", Preprocessing(num_frames=FRAMES), surreal_root=root,
                                    background_root=background_windows_for(sim_data["backgrounds"], FRAMES))
    assert [entry.path for entry in source.clips] == [infos[3].with_name(infos[3].name.replace("_info.mat", ".mp4"))]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "3 of 4 clips skipped: not a readable MATLAB v5 file (2), non-finite joints3D (1); e.g. " in warnings[0]
    assert str(infos[0]) in warnings[0]


def test_no_readable_info_mat_is_one_line_naming_the_root(sim_data, backgrounds, tmp_path, train_main, capsys):
    root = _copy(sim_data["surreal"], tmp_path / "surreal")
    for info in root.glob("train/run*/*/*_info.mat"):
        info.write_text("not a MAT-file\n")
    line = _one_error_line(train_main(_args(tmp_path / "run", root, backgrounds, 2)), capsys.readouterr().err)
    assert line.startswith(f"error: {root}: no readable SURREAL clip in 'train'"), line
    assert "4 of 4 clips skipped: not a readable MATLAB v5 file (4)" in line, line


def _rot_joints3d_after_the_scan(root: Path, infos: list[Path]) -> None:
    """A NaN in the `joints3D` of `infos` after the manifest scan cached the folder, the files' sizes and times kept:
    silent corruption that the cached manifest cannot see, so the decoder meets it while training."""
    for info in root.glob("train/run*/*/*_info.mat"):  # uncompressed, so that a value can be overwritten in place
        fields = {k: v for k, v in scipy.io.loadmat(info).items() if not k.startswith("__")}
        scipy.io.savemat(info, fields, do_compression=False)
    assert len(surreal_manifest.load_manifest(root, "train", rebuild=True).clips) == 4
    for info in infos:
        stat, data = info.stat(), info.read_bytes()
        joints = scipy.io.loadmat(info)["joints3D"]
        at = data.find(joints.tobytes(order="F"))
        assert at > 0, info
        nan = np.array([np.nan], joints.dtype).tobytes()
        info.write_bytes(data[:at] + nan + data[at + len(nan):])
        os.utime(info, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _scalars(run: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing import event_accumulator
    events = event_accumulator.EventAccumulator(str(run / "train"), size_guidance={"tensors": 0})
    events.Reload()
    return [float(tf.make_ndarray(event.tensor_proto)) for event in events.Tensors(tag)]


def test_nan_joints3d_met_by_the_decoder_is_reported_as_non_finite(sim_data, backgrounds, tmp_path):
    root = _copy(sim_data["surreal"], tmp_path / "surreal")
    rotten = sorted(root.glob("train/run*/*/*_info.mat"))[:3]  # one clip of four stays good: the run trains
    _rot_joints3d_after_the_scan(root, rotten)
    done = _train(tmp_path / "run", root, backgrounds, 3)
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    found = re.fullmatch(r"skipped (\d+) bad samples \((\d+) × non-finite values\); e\.g\. (\S+) \+ \S+: "
                         r"SurrealFormatError: (\S+): non-finite joints3D \(frame 0\)", last)
    assert found and found.group(1) == found.group(2) and Path(found.group(4)) in rotten, last
    assert 0 < done.stderr.count("skipping bad sample") <= loop.BAD_SAMPLE_LOG_FIRST
    # TensorBoard counts them under their reason, not as a person leaving the frame.
    assert _scalars(tmp_path / "run", "data/rejected/non-finite_values")[-1] > 0
    assert _scalars(tmp_path / "run", "data/rejected/the_person_leaves_the_frame")[-1] == 0


# --------------------------------------------------------------------------------------------------------------------
# The model directory and the disk

@pytest.mark.parametrize("where", ["under a file", "under /proc"])
def test_unwritable_model_dir_is_one_line_naming_it(where, sim_data, backgrounds, tmp_path, train_main, capsys):
    # Tests run as root, which chmod does not stop: a path no one can create instead.
    if where == "under a file":
        (tmp_path / "a_file").write_text("")
        model_dir, why = tmp_path / "a_file" / "run", f"{tmp_path / 'a_file'} is a file"
    else:
        model_dir, why = Path(f"/proc/mhr_tf_test_{os.getpid()}/run"), "No such file or directory"
    code = train_main(_args(model_dir, sim_data["surreal"], backgrounds, 2))
    line = _one_error_line(code, capsys.readouterr().err)
    assert line == (f"error: {model_dir}: the model directory is not writable ({why}); choose another --model_dir or "
                    f"fix its permissions")


def test_full_disk_refuses_then_fails_a_save_keeping_the_previous_checkpoint(sim_data, backgrounds, tmp_path,
                                                                             train_main, capsys, monkeypatch):
    run = tmp_path / "run"
    real, calls = shutil.disk_usage, []

    def nearly_full(path):  # enough for the check at start and step 1's save, then 1 MiB
        calls.append(path)
        usage = real(path)
        return usage._replace(free=usage.free if len(calls) <= 2 else 2 ** 20)

    monkeypatch.setattr(shutil, "disk_usage", nearly_full)
    line = _one_error_line(train_main(_args(run, sim_data["surreal"], backgrounds, 3)), capsys.readouterr().err)
    first = run / "checkpoints" / "ckpt-1"
    assert re.fullmatch(rf"error: {run / 'checkpoints'}: 1\.0 MiB free, a checkpoint needs about \d+\.\d MiB; free "
                        rf"some space and rerun the same command to resume from {first}", line), line
    assert tf.train.latest_checkpoint(str(run / "checkpoints")) == str(first)
    monkeypatch.undo()

    # The user frees too little: the rerun resumes, and step 2's save runs out of room inside SaveV2. A file size
    # limit makes the write fail as a full disk would (EFBIG instead of ENOSPC), with no root and no mount.
    limit = (run / "checkpoints" / "ckpt-1.data-00000-of-00001").stat().st_size // 2
    stale = run / "checkpoints" / "ckpt-7_temp"
    stale.mkdir()
    (stale / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"half a save, killed")

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = _train(run, sim_data["surreal"], backgrounds, 3, preexec_fn=small_files)
    line = _error_line(done)
    assert line.startswith(f"error: {run / 'checkpoints'}: saving step 2 failed (File too large: "
                           f"{run / 'checkpoints' / 'ckpt-2_temp'}/"), line
    assert line.endswith(f"the newest good checkpoint is still {first} — free some space (or fix the disk) and "
                         f"rerun the same command to resume from it"), line
    assert f"removed {stale}, left by an interrupted save" in done.stdout
    assert f"resuming from {first} (step 1)" in done.stdout
    assert tf.train.latest_checkpoint(str(run / "checkpoints")) == str(first)
    assert not list((run / "checkpoints").glob("*_temp*"))
    assert int(_checkpoint(run)["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 1


# --------------------------------------------------------------------------------------------------------------------
# The loss, the data roots

def test_nan_loss_ends_in_one_line_without_an_abort(sim_data, backgrounds, tmp_path):
    # Adam moves every weight by ~the learning rate: 1e30 overflows the network at step 2.
    done = _train(tmp_path / "run", sim_data["surreal"], backgrounds, 4, extra=["learning_rate_schedule.base = 1e30"])
    first = tmp_path / "run" / "checkpoints" / "ckpt-1"
    assert _error_line(done) == (
        f"error: loss became nan at step 2; stopped without saving. The last good checkpoint is {first}; lower the "
        f"learning rate or check the data, then rerun to resume from it.")


@pytest.mark.parametrize("case", ["missing", "empty", "no clips"])
def test_wrong_or_empty_surreal_root_is_one_line_naming_it(case, backgrounds, tmp_path, train_main, capsys):
    root = tmp_path / "surreal"
    if case != "missing":
        root.mkdir()
    if case == "no clips":
        (root / "train" / "run0").mkdir(parents=True)
    line = _one_error_line(train_main(_args(tmp_path / "run", root, backgrounds, 2)), capsys.readouterr().err)
    expected = {"missing": f"error: {root}: no such directory — set train.surreal_root to SURREAL's folder",
                "empty": f"error: {root}: no 'train' folder — expected <root>/{{train,val,test}}/run{{0,1,2}}/<seq>/",
                "no clips": f"error: {root}: no readable SURREAL clip in 'train' ({root / 'train'}): no clip found"}
    assert line.startswith(expected[case]), line
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before the model was built


# --------------------------------------------------------------------------------------------------------------------
# kill -9 anywhere, then rerun

@pytest.mark.slow
def test_killed_at_random_points_then_rerun_ends_bit_identical(sim_data, backgrounds, tmp_path):
    """kill -9 during start-up, inside a checkpoint save (at first sight of its `ckpt-N_temp` folder) and twice
    while training (a random part of a step after a checkpoint's files appear), rerunning the same command each
    time; the run that finishes must hold every checkpoint tensor bit for bit as an uninterrupted run does."""
    env = dict(os.environ, TF_DETERMINISTIC_OPS="1")
    began = time.time()
    straight = _start(tmp_path / "straight.log", tmp_path / "straight", sim_data["surreal"], backgrounds, KILL_STEPS,
                      env=env)  # alongside: the machine has two cores
    rng = random.Random(KILL_SEED)
    run, log, kills = tmp_path / "killed", tmp_path / "killed.log", []
    checkpoints = run / "checkpoints"

    def newest() -> int:
        latest = tf.train.latest_checkpoint(str(checkpoints))
        return int(latest.rsplit("-", 1)[1]) if latest else 0

    def kill(proc, where: str) -> None:
        proc.kill()
        proc.wait()
        kills.append((where, newest(), sorted(p.name for p in checkpoints.glob("*_temp*"))))

    proc = _start(log, run, sim_data["surreal"], backgrounds, KILL_STEPS, env=env)
    time.sleep(rng.uniform(1.0, 6.0))  # imports, the run directory, the manifest, building the model
    kill(proc, "start-up")
    for moment in ("save", "step", "step"):
        target = newest() + rng.randint(1, 2)
        proc = _start(log, run, sim_data["surreal"], backgrounds, KILL_STEPS, env=env)
        if moment == "save":  # TF writes ckpt-N_temp/, merges it into ckpt-N.*, then the `checkpoint` file
            _wait_for(lambda: (checkpoints / f"ckpt-{target}_temp").exists() or
                      (checkpoints / f"ckpt-{target}.index").exists(), proc, log, poll=0.001)
        else:
            _wait_for(lambda: (checkpoints / f"ckpt-{target}.index").exists(), proc, log)
            time.sleep(rng.uniform(0.0, 0.3))  # a step and a save take ~0.3 s
        kill(proc, f"{moment} of ckpt-{target}" if moment == "save" else f"after ckpt-{target}")
    assert newest() < KILL_STEPS, kills
    done = _train(run, sim_data["surreal"], backgrounds, KILL_STEPS, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming from {checkpoints}/ckpt-{kills[-1][1]}" in done.stdout, (kills, done.stdout)
    for stale in kills[-1][2]:
        assert f"removed {checkpoints / stale}, left by an interrupted save" in done.stdout
    assert straight.wait(timeout=RUN_TIMEOUT_S) == 0, (tmp_path / "straight.log").read_text()[-3000:]

    resumed, uninterrupted = _checkpoint(run), _checkpoint(tmp_path / "straight")
    assert resumed.keys() == uninterrupted.keys()
    assert sum(name.startswith("optimizer/_variables") for name in resumed) > 20  # Adam's moments
    assert sum(name.startswith("seed_states") for name in resumed) > 0  # dropout's random state
    assert int(resumed["step/.ATTRIBUTES/VARIABLE_VALUE"]) == KILL_STEPS
    for name, value in resumed.items():
        other = uninterrupted[name]
        assert (np.asarray(value).dtype, np.shape(value)) == (np.asarray(other).dtype, np.shape(other)), name
        assert np.asarray(value).tobytes() == np.asarray(other).tobytes(), (name, kills)
    assert not list(checkpoints.glob("*_temp*"))
    print("kills (where, newest checkpoint after, temporaries left):", kills, f"{time.time() - began:.0f} s")
