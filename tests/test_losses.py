"""Motion HMR's losses against float64 numpy references written here."""
import numpy as np
import pytest
import tensorflow as tf

from mhr_tf import losses


def _rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _aligned_error_reference(predicted: np.ndarray, target: np.ndarray) -> float:
    """min over similarities of the mean squared joint distance, for one skeleton [J, 3] (Umeyama 1991)."""
    mu_p, mu_t = predicted.mean(0), target.mean(0)
    p0, t0 = predicted - mu_p, target - mu_t
    u, d, vt = np.linalg.svd(t0.T @ p0)
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / np.sum(p0 ** 2)
    aligned = scale * p0 @ rotation.T + mu_t
    return float(np.mean(np.sum((aligned - target) ** 2, axis=-1)))


def _reference_loss(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[B, P, J, 3] -> [B]."""
    return np.array([np.mean([_aligned_error_reference(p, t) for p, t in zip(pb, tb)])
                     for pb, tb in zip(predicted, target)])


def test_procrustes_loss_is_zero_for_a_similarity_transformed_copy():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(2, 3, 14, 3))
    predicted = np.empty_like(target)
    for b in range(2):
        for p in range(3):
            predicted[b, p] = 0.3 * target[b, p] @ _rotation(rng).T + rng.normal(size=3)
    loss = losses.procrustes_joints3d_loss(tf.constant(predicted, tf.float32), tf.constant(target, tf.float32))
    np.testing.assert_allclose(loss.numpy(), 0.0, atol=1e-5)


def test_procrustes_loss_matches_a_float64_reference():
    rng = np.random.default_rng(1)
    target, predicted = rng.normal(size=(2, 3, 14, 3)), rng.normal(size=(2, 3, 14, 3))
    loss = losses.procrustes_joints3d_loss(tf.constant(predicted), tf.constant(target))
    np.testing.assert_allclose(loss.numpy(), _reference_loss(predicted, target), rtol=1e-9)
    assert np.all(loss.numpy() > 0.1)


def test_procrustes_loss_gradient_matches_finite_differences_of_the_reference():
    rng = np.random.default_rng(2)
    target, predicted = rng.normal(size=(1, 1, 14, 3)), rng.normal(size=(1, 1, 14, 3))
    x = tf.constant(predicted)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = losses.procrustes_joints3d_loss(x, tf.constant(target))[0]
    gradient = tape.gradient(loss, x).numpy()
    step, numeric = 1e-6, np.zeros_like(predicted)
    for index in np.ndindex(predicted.shape):
        plus, minus = predicted.copy(), predicted.copy()
        plus[index] += step
        minus[index] -= step
        numeric[index] = (_reference_loss(plus, target)[0] - _reference_loss(minus, target)[0]) / (2 * step)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-8)


def test_keypoints2d_loss_averages_only_valid_keypoints():
    predicted = np.zeros((2, 1, 3, 2), np.float32)
    target = np.array([[[[3.0, 4.0], [1.0, 0.0], [100.0, 100.0]]],
                       [[[1.0, 1.0], [5.0, 5.0], [2.0, 0.0]]]], np.float32)
    valid = np.array([[[1, 1, 0]], [[0, 0, 0]]], np.float32)
    loss = losses.keypoints2d_loss(tf.constant(predicted), tf.constant(target), tf.constant(valid)).numpy()
    # Example 0: (25 + 1) / 2 valid keypoints; example 1: no valid keypoint -> 0, not NaN.
    np.testing.assert_allclose(loss, [13.0, 0.0])


def test_domain_loss_is_sigmoid_cross_entropy_averaged_over_pairs():
    logits = np.array([[0.0, 2.0], [-1.0, 3.0]])
    domain = np.array([0, 1])
    expected = [np.mean([np.log(2.0), np.log1p(np.exp(2.0))]), np.mean([np.log1p(np.exp(1.0)),
                                                                        np.log1p(np.exp(-3.0))])]
    np.testing.assert_allclose(losses.domain_loss(tf.constant(logits), tf.constant(domain)).numpy(), expected,
                               rtol=1e-12)


def _random_outputs_and_labels(rng, batch=2, pairs=3, with_domain_logits=False):
    outputs, labels = {}, {}
    for head in losses.HEADS:
        outputs[f"{head}/joints3d"] = rng.normal(size=(batch, pairs, 14, 3))
        outputs[f"{head}/keypoints2d"] = rng.normal(size=(batch, pairs, 14, 2))
        labels[f"joints3d_{head}"] = rng.normal(size=(batch, pairs, 14, 3))
        labels[f"keypoints2d_{head}"] = rng.normal(size=(batch, pairs, 14, 2))
        labels[f"keypoints2d_valid_{head}"] = (rng.uniform(size=(batch, pairs, 14)) > 0.3).astype(np.float64)
    if with_domain_logits:
        outputs["domain/logits"] = rng.normal(size=(batch, pairs))
    return ({k: tf.constant(v) for k, v in outputs.items()}, {k: tf.constant(v) for k, v in labels.items()})


def _reference_2d(predicted, target, valid):
    squared = np.sum((predicted - target) ** 2, axis=-1)
    return np.sum(valid * squared, axis=(1, 2)) / np.sum(valid, axis=(1, 2))


def test_total_weights_every_term_for_current_and_future():
    outputs, labels = _random_outputs_and_labels(np.random.default_rng(3))
    terms = losses.motion_hmr_losses(labels, outputs, joints3d_weight=2.0, keypoints2d_weight=0.5, future_weight=0.25)
    expected_total = 0.0
    for head, head_weight in (("current", 1.0), ("future", 0.25)):
        e3d = _reference_loss(outputs[f"{head}/joints3d"].numpy(), labels[f"joints3d_{head}"].numpy())
        e2d = _reference_2d(outputs[f"{head}/keypoints2d"].numpy(), labels[f"keypoints2d_{head}"].numpy(),
                            labels[f"keypoints2d_valid_{head}"].numpy())
        np.testing.assert_allclose(terms[f"{head}/joints3d"].numpy(), e3d, rtol=1e-9)
        np.testing.assert_allclose(terms[f"{head}/keypoints2d"].numpy(), e2d, rtol=1e-9)
        expected_total = expected_total + head_weight * (2.0 * e3d + 0.5 * e2d)
    assert terms["total"].shape == (2,)  # per example, for tf.nn.compute_average_loss
    np.testing.assert_allclose(terms["total"].numpy(), expected_total, rtol=1e-9)


def test_target_domain_examples_only_feed_the_domain_term():
    outputs, labels = _random_outputs_and_labels(np.random.default_rng(4), with_domain_logits=True)
    labels["domain"] = tf.constant([0, 1], tf.int32)
    terms = losses.motion_hmr_losses(labels, outputs)
    for name in ("current/joints3d", "future/joints3d", "current/keypoints2d", "future/keypoints2d"):
        assert terms[name].numpy()[0] > 0 and terms[name].numpy()[1] == 0.0
    domain = losses.domain_loss(outputs["domain/logits"], labels["domain"]).numpy()
    np.testing.assert_allclose(terms["domain"].numpy(), domain)
    np.testing.assert_allclose(terms["total"].numpy()[1], domain[1])


def test_adversary_without_domain_labels_is_an_error():
    outputs, labels = _random_outputs_and_labels(np.random.default_rng(5), with_domain_logits=True)
    with pytest.raises(ValueError, match="'domain'"):
        losses.motion_hmr_losses(labels, outputs)


def test_unlabelled_target_examples_give_finite_zero_gradients():
    """The target branch carries all-zero labels and no valid keypoints: no NaN may reach the shared weights."""
    outputs, labels = _random_outputs_and_labels(np.random.default_rng(6), with_domain_logits=True)
    labels = {key: tf.concat([value[:1], tf.zeros_like(value[1:])], axis=0) for key, value in labels.items()}
    labels["domain"] = tf.constant([0, 1], tf.int32)
    predictions = {key: tf.Variable(value) for key, value in outputs.items()}
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(losses.motion_hmr_losses(labels, predictions)["total"])
    assert np.isfinite(total.numpy())
    for key, gradient in zip(predictions, tape.gradient(total, list(predictions.values()))):
        gradient = gradient.numpy()
        assert np.all(np.isfinite(gradient)), key
        if key != "domain/logits":
            np.testing.assert_array_equal(gradient[1], 0.0)
