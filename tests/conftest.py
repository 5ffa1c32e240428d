"""Test session set-up: quiet TensorFlow, and a private MHR_TF_HOME so tests never touch the user's cache."""
import os
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
