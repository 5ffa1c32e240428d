"""The session set-up of tests/conftest.py. The two determinism tests run in file order: the second checks what the
first left behind."""
import os

import tensorflow as tf
from tensorflow.python.framework import config as tf_config


def test_a_test_may_turn_op_determinism_on():
    tf.config.experimental.enable_op_determinism()
    assert tf_config.is_op_determinism_enabled()


def test_op_determinism_is_back_to_the_default_in_the_next_test():
    default = os.environ.get("TF_DETERMINISTIC_OPS", "").strip().lower() in ("1", "true")  # off unless set
    assert tf_config.is_op_determinism_enabled() == default
