"""Motion HMR's training losses (paper §3.2; App. B), per example so the trainer can use tf.nn.compute_average_loss.

§3.2: "we train directly for Procrustes-aligned 3D keypoint location error ... as well as 2D reprojection error of
the 3D pose", the simplified HMR loss of Arnab et al. 2019 [6]; App. B: "we compute a loss for all 60 predictions",
the current and the future head of every pair. Both terms are squared errors: metres² for 3D and HMR's normalized crop
units² for 2D. A body of ~1.7 m spans ~1.5 crop units (mean camera scale 0.9), so with unit weights the two terms
are of the same size.

Target-domain examples (DANN, `labels["domain"] == 1`) have no labels: their supervised terms are zero and only the
domain term sees them. The trainer averages the supervised terms over the labelled clips and the domain term over all
rows (`mhr_tf.training.step`), so the domain loss is the adversary's mean cross-entropy per row, whatever the batch.
"""
from __future__ import annotations

import tensorflow as tf

from mhr_tf import geometry

HEADS = ("current", "future")
JOINTS3D_WEIGHT = 1.0
KEYPOINTS2D_WEIGHT = 1.0
# App. B weighs the future predictions like the current ones ("a loss for all 60 predictions").
FUTURE_WEIGHT = 1.0
# Domain labels of the batch contract.
SOURCE_DOMAIN, TARGET_DOMAIN = 0, 1


def procrustes_joints3d_loss(predicted: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Mean squared distance (m²) after aligning each predicted skeleton to its target by the best similarity.

    predicted, target: `[B, P, J, 3]` -> `[B]` (mean over pairs and joints).

    The similarity is computed from a stop_gradient copy of the prediction: it minimises this very squared error,
    so (envelope theorem) its own derivative contributes nothing and the gradient is exactly that of the aligned
    error — without back-propagating through an SVD, whose gradient blows up for near-equal singular values.
    """
    similarity = geometry.procrustes(tf.stop_gradient(predicted), target)
    aligned = geometry.apply_similarity(predicted, similarity)
    return tf.reduce_mean(tf.reduce_sum(tf.square(aligned - target), axis=-1), axis=[1, 2])


def keypoints2d_loss(predicted: tf.Tensor, target: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """Mean squared 2D distance (normalized crop units²) over each example's valid keypoints.

    predicted, target: `[B, P, J, 2]`; valid: `[B, P, J]` 1/0 -> `[B]`. An example without valid keypoints gives 0.
    """
    valid = tf.cast(valid, predicted.dtype)
    squared = tf.reduce_sum(tf.square(predicted - target), axis=-1)  # [B, P, J]
    return tf.math.divide_no_nan(tf.reduce_sum(valid * squared, axis=[1, 2]), tf.reduce_sum(valid, axis=[1, 2]))


def domain_loss(logits: tf.Tensor, domain: tf.Tensor) -> tf.Tensor:
    """The DANN adversary's loss: sigmoid cross-entropy of per-pair logits `[B, P]` against `domain [B]` -> `[B]`."""
    labels = tf.broadcast_to(tf.cast(domain, logits.dtype)[:, None], tf.shape(logits))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits), axis=1)


def motion_hmr_losses(labels: dict, outputs: dict, joints3d_weight: float = JOINTS3D_WEIGHT,
                      keypoints2d_weight: float = KEYPOINTS2D_WEIGHT,
                      future_weight: float = FUTURE_WEIGHT) -> dict[str, tf.Tensor]:
    """Every loss term `[B]` (unweighted, for logging), their weighted sum over the supervised terms under
    "supervised", and "total" = "supervised" + "domain" per row.

    Terms: f"{head}/joints3d" and f"{head}/keypoints2d" for head in `HEADS` (batch contract keys), and "domain" when
    the model has a DANN adversary (`outputs["domain/logits"]`). The future head's terms are scaled by
    `future_weight`; the domain term enters with weight 1 (its lambda lives in the gradient reversal).
    """
    dtype = outputs["current/joints3d"].dtype
    if "domain" in labels:
        source = tf.cast(tf.equal(tf.cast(labels["domain"], tf.int32), SOURCE_DOMAIN), dtype)  # [B]
    else:
        source = tf.ones_like(outputs["current/joints3d"][:, 0, 0, 0])
    terms, total = {}, tf.zeros_like(source)
    for head in HEADS:
        head_weight = 1.0 if head == "current" else future_weight
        joints3d = source * procrustes_joints3d_loss(outputs[f"{head}/joints3d"],
                                                     tf.cast(labels[f"joints3d_{head}"], dtype))
        keypoints2d = source * keypoints2d_loss(outputs[f"{head}/keypoints2d"],
                                                tf.cast(labels[f"keypoints2d_{head}"], dtype),
                                                labels[f"keypoints2d_valid_{head}"])
        terms[f"{head}/joints3d"], terms[f"{head}/keypoints2d"] = joints3d, keypoints2d
        total += head_weight * (joints3d_weight * joints3d + keypoints2d_weight * keypoints2d)
    terms["supervised"] = total
    if "domain/logits" in outputs:
        if "domain" not in labels:
            raise ValueError("motion_hmr_losses: the model has a domain adversary (outputs['domain/logits']) but "
                             "labels has no 'domain' key; expected int32 [B], 0 synthetic, 1 target")
        terms["domain"] = domain_loss(outputs["domain/logits"], labels["domain"])
        total += terms["domain"]
    terms["total"] = total
    return terms
