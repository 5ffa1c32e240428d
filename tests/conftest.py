"""Test session set-up: quiet TensorFlow, a private MHR_TF_HOME so tests never touch the user's cache, and TF's
process-wide op determinism switched back after every test."""
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# One home for the whole test session: the open body model is built once into it and reused.
os.environ["MHR_TF_HOME"] = os.environ.get("MHR_TF_TEST_HOME") or tempfile.mkdtemp(prefix="mhr_tf_test_home_")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def sim_data(tmp_path_factory) -> dict[str, Path]:
    """Tiny simulator data in the real formats, made once per test session: SURREAL-format clips (train: 4 × 10
    frames), background videos with their camera-motion cache (3 × 12 frames) and a shifted-domain 3DPW-format set
    (test split: 2 × 10 frames)."""
    from mhr_tf.data import camera_motion, videos
    from mhr_tf.sim import make
    root = tmp_path_factory.mktemp("sim")
    make.write_set("surreal", root / "surreal", 4, 10, seed=0, split="train", progress=False)
    make.write_set("backgrounds", root / "backgrounds", 3, 12, seed=0, progress=False)
    for entry in videos.list_videos(root / "backgrounds"):
        camera_motion.preprocess_video(entry.path, method="dis", scale=1.0)
    make.write_set("threedpw", root / "threedpw", 2, 10, seed=0, split="test", progress=False)
    return {"surreal": root / "surreal", "backgrounds": root / "backgrounds", "threedpw": root / "threedpw"}


def _op_determinism_default() -> bool:
    """What TF starts with: off, unless TF_DETERMINISTIC_OPS says otherwise (TF reads it on first use)."""
    return os.environ.get("TF_DETERMINISTIC_OPS", "").strip().lower() in ("1", "true")


@pytest.fixture(autouse=True)
def _restore_op_determinism():
    """`tf.config.experimental.enable_op_determinism()` is process-wide and TF exports no way back, so a test that
    calls it (tests/test_train.py does) would make every later test in the session run deterministic kernels and
    tf.data pipelines (no parallel nondeterministic map, no prefetch with stateful functions): slower, and a
    different code path from the one the test meant to check. This puts the switch back after each test.

    Only the switch is restored: a dataset or traced function the test built while it was on keeps what it chose,
    so module- or session-scoped fixtures should not enable it. Tests that never load TensorFlow pay nothing.
    """
    config = _tf_config()
    before = config.is_op_determinism_enabled() if config else _op_determinism_default()
    yield
    config = _tf_config()
    if config and config.is_op_determinism_enabled() != before:
        # The inverse of enable_op_determinism (same C++ flag), public in TF's source but not exported as tf.config.*
        (config.enable_op_determinism if before else config.disable_op_determinism)()


def _tf_config():
    """TF's config module if a test has loaded TensorFlow, else None (loading it here would slow numpy-only tests)."""
    if "tensorflow" not in sys.modules:
        return None
    from tensorflow.python.framework import config
    return config
