"""DANN: gradient reversal and the domain adversary."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from mhr_tf import losses
from mhr_tf.model import dann


def test_reverse_gradient_is_identity_forward_and_minus_weight_backward():
    x = tf.constant([[1.0, -2.0, 3.0]])
    c = tf.constant([[0.5, 4.0, -1.5]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = dann.reverse_gradient(x, 2.5)
        loss = tf.reduce_sum(c * y)  # d loss / d y = c
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), -2.5 * c.numpy())


@pytest.mark.parametrize("weight", [0.2, 5.0])
def test_adversary_gradient_reaches_features_reversed_and_scaled(weight):
    """vs a hand computation: the same dense stack without reversal, differentiated with GradientTape."""
    keras.utils.set_random_seed(0)
    adversary = dann.DomainAdversary(weight, units=6)
    features = tf.random.normal((3, 4, 5), seed=1)  # [B, P, D]
    domain = tf.constant([0, 1, 1], tf.int32)
    adversary(features)

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(features)
        reversed_loss = tf.reduce_sum(losses.domain_loss(adversary(features), domain))
        x = features
        for dense in adversary.hidden:
            x = dense(x)
        plain_loss = tf.reduce_sum(losses.domain_loss(adversary.logit(x)[..., 0], domain))
    np.testing.assert_allclose(reversed_loss.numpy(), plain_loss.numpy(), rtol=1e-6)
    plain = tape.gradient(plain_loss, features).numpy()
    assert np.abs(plain).max() > 0
    np.testing.assert_allclose(tape.gradient(reversed_loss, features).numpy(), -weight * plain, rtol=1e-5,
                               atol=1e-7)
    # The adversary itself learns from its loss unchanged.
    for got, want in zip(tape.gradient(reversed_loss, adversary.trainable_weights),
                         tape.gradient(plain_loss, adversary.trainable_weights)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_adversary_has_two_hidden_layers_then_one_logit():
    adversary = dann.DomainAdversary(1.0, units=6)
    logits = adversary(tf.zeros((2, 3, 5)))
    assert logits.shape == (2, 3)
    assert [tuple(w.shape) for w in adversary.trainable_weights] == [(5, 6), (6,), (6, 6), (6,), (6, 1), (1,)]


def test_dann_layers_round_trip_their_config():
    adversary = dann.DomainAdversary(0.7, units=6, name="adv")
    features = np.random.default_rng(0).normal(size=(2, 3, 5)).astype(np.float32)
    expected = adversary(features).numpy()
    clone = dann.DomainAdversary.from_config(adversary.get_config())
    clone(features)
    clone.set_weights(adversary.get_weights())
    assert clone.get_config() == adversary.get_config() and clone.weight == 0.7
    np.testing.assert_array_equal(clone(features).numpy(), expected)
    reversal = dann.GradientReversal(1.5)
    assert dann.GradientReversal.from_config(reversal.get_config()).weight == 1.5
