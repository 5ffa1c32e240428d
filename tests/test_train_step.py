"""The real training step (`mhr_tf.training.step`): DANN's reversed gradient into the trunk, the scale of each loss
term, and the training PA-MPJPE over labelled rows only."""
import keras
import numpy as np
import tensorflow as tf

from mhr_tf import geometry, losses
from mhr_tf.model.motion_hmr import ModelConfig
from mhr_tf.training import inputs, step

PAIRS, CROP, CHANNELS = 3, 32, ("rgb", "occlusion")
TINY = ModelConfig(architecture="resnet_tiny", lstm_units=8, head_units=8, regressor_units=8, adversary_units=8,
                   dropout=0.0)


def _batch(rows: int, domain, seed: int = 0):
    rng = np.random.default_rng(seed)
    f32 = lambda *shape: tf.constant(rng.normal(0, 0.3, shape).astype(np.float32))  # noqa: E731
    labels = {"joints3d_current": f32(rows, PAIRS, 14, 3), "joints3d_future": f32(rows, PAIRS, 14, 3),
              "keypoints2d_current": f32(rows, PAIRS, 14, 2), "keypoints2d_future": f32(rows, PAIRS, 14, 2),
              "keypoints2d_valid_current": tf.ones([rows, PAIRS, 14]),
              "keypoints2d_valid_future": tf.ones([rows, PAIRS, 14]),
              "domain": tf.constant(domain, tf.int32), "index": tf.range(rows, dtype=tf.int64)}
    return {"inputs": f32(rows, PAIRS, CROP, CROP, 4)}, labels


def _model(weight):
    keras.utils.set_random_seed(3)
    return TINY.build(CROP, CHANNELS, num_pairs=PAIRS, dann_weight=weight)


def _trunk_step(weight, features, labels, learning_rate=100.0):
    """The trunk's change in one SGD step of the real step, on target-domain rows only (no supervised term)."""
    model = _model(weight)
    trunk = model.get_layer("trunk").trainable_variables
    before = [v.numpy() for v in trunk]
    train_step = step.make_train_step(model, keras.optimizers.SGD(learning_rate), tf.distribute.get_strategy(),
                                      global_batch=2, dann=True)
    logged, _ = train_step(features, labels)
    return [v.numpy() - b for v, b in zip(trunk, before)], logged, model


def test_the_adversarys_gradient_reaches_the_trunk_reversed_and_scaled():
    features, labels = _batch(4, [1, 1, 1, 1])
    change_1, logged, _ = _trunk_step(1.0, features, labels)
    change_2, _, _ = _trunk_step(2.0, features, labels)
    change_plain, _, _ = _trunk_step(-1.0, features, labels)  # reversal by -(-1): the plain gradient
    assert float(logged["domain"]) > 0 and max(np.abs(c).max() for c in change_1) > 0
    for c1, c2, plain in zip(change_1, change_2, change_plain):
        scale = 1e-3 * np.abs(c1).max()  # float32: weights ~1 change by (lr x gradient), read back by subtraction
        np.testing.assert_allclose(c2, 2.0 * c1, rtol=1e-3, atol=scale)
        np.testing.assert_allclose(c1, -plain, rtol=1e-3, atol=scale)


def test_a_reversed_step_makes_the_domains_harder_to_tell_apart():
    """First order: the trunk's step raises the adversary's loss (it learns features the adversary cannot separate);
    without the reversal the same step lowers it."""
    features, labels = _batch(4, [0, 0, 1, 1])
    for weight, sign in ((1.0, 1.0), (-1.0, -1.0)):
        model = _model(weight)
        adversary_vars = model.get_layer("domain_adversary").trainable_variables

        def domain_loss():  # batch statistics, as the step sees them (moving averages move with every step)
            return float(tf.reduce_mean(losses.domain_loss(model(features, training=True)["domain/logits"],
                                                           labels["domain"])))
        before = domain_loss()
        saved = [v.numpy() for v in adversary_vars]
        train_step = step.make_train_step(model, keras.optimizers.SGD(1e-3), tf.distribute.get_strategy(),
                                          global_batch=2, dann=True)
        train_step(features, labels)
        for v, value in zip(adversary_vars, saved):  # only the trunk's move counts here
            v.assign(value)
        assert sign * (domain_loss() - before) > 0, (weight, before, domain_loss())


def test_each_term_enters_the_loss_at_its_documented_scale():
    """Supervised terms averaged over the labelled clips, the domain term over all rows (source and target)."""
    features, labels = _batch(4, [0, 0, 1, 1], seed=5)
    model = _model(1.0)
    outputs = model(features, training=True)  # dropout is off: the step sees the same outputs
    terms = {k: v.numpy() for k, v in losses.motion_hmr_losses(labels, outputs).items()}
    expected_total = terms["supervised"].sum() / 2 + terms["domain"].sum() / 4
    train_step = step.make_train_step(model, keras.optimizers.SGD(0.0), tf.distribute.get_strategy(),
                                      global_batch=2, dann=True)
    logged, _ = train_step(features, labels)
    np.testing.assert_allclose(float(logged["total"]), expected_total, rtol=1e-4)
    np.testing.assert_allclose(float(logged["domain"]), terms["domain"].mean(), rtol=1e-4)
    np.testing.assert_allclose(float(logged["current/joints3d"]), terms["current/joints3d"][:2].mean(), rtol=1e-4)
    assert terms["supervised"][2:].tolist() == [0.0, 0.0]  # target rows carry no supervision
    # The training PA-MPJPE is over the labelled rows only.
    aligned = geometry.procrustes_align(outputs["current/joints3d"].numpy()[:2].astype(np.float64),
                                        labels["joints3d_current"].numpy()[:2].astype(np.float64))
    expected_mm = 1000 * np.linalg.norm(aligned - labels["joints3d_current"].numpy()[:2], axis=-1).mean()
    np.testing.assert_allclose(float(logged["pa_mpjpe_mm"]), expected_mm, rtol=1e-3)


def test_joined_domains_put_the_target_rows_last_with_zero_labels():
    features, labels = _batch(2, [0, 0])
    target = {"inputs": tf.ones([2, PAIRS, CROP, CROP, 4])}
    joined_features, joined = inputs.join_domains((features, labels), target)
    assert joined_features["inputs"].shape[0] == 4
    np.testing.assert_array_equal(joined["domain"], [0, 0, 1, 1])
    np.testing.assert_array_equal(joined["index"], [0, 1, -1, -1])
    assert float(tf.reduce_sum(tf.abs(joined["joints3d_current"][2:]))) == 0.0
