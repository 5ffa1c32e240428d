"""Test session set-up: quiet TensorFlow, and a private MHR_TF_HOME so tests never touch the user's cache."""
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# One home for the whole test session: the open body model is built once into it and reused.
os.environ["MHR_TF_HOME"] = os.environ.get("MHR_TF_TEST_HOME") or tempfile.mkdtemp(prefix="mhr_tf_test_home_")
