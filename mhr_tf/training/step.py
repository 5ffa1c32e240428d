"""One training step of Motion HMR under a tf.distribute strategy (tf-models style: `GradientTape` inside
`strategy.run`, losses scaled to the global batch). The loop, the model benchmark and the tests all run this step."""
from __future__ import annotations

import tensorflow as tf

from mhr_tf import losses, metrics


def source_rows(labels: dict) -> tf.Tensor:
    """`[B]` bool: the rows with labels (synthetic data); DANN's target rows have none."""
    return tf.equal(tf.cast(labels["domain"], tf.int32), losses.SOURCE_DOMAIN)


def make_train_step(model, optimizer, strategy: tf.distribute.Strategy, global_batch: int, dann: bool = False):
    """`train_step(features, labels) -> (logged, last_example)`, a `tf.function` over distributed batches.

    `global_batch`: labelled clips per step over all replicas. With `dann`, every replica's batch also holds as many
    unlabelled target-domain rows (App. B): the supervised terms are averaged over the labelled clips and the domain
    term over all rows, so each enters at the scale `losses.motion_hmr_losses` documents.
    `logged`: every loss term averaged as it enters the loss, and the training PA-MPJPE (mm, current head, labelled
    rows only); `last_example`: the largest example index in the step, over all workers (for resuming).
    """
    rows = global_batch * (2 if dann else 1)

    def replica_step(features, labels):
        with tf.GradientTape() as tape:
            outputs = model(features, training=True)
            terms = losses.motion_hmr_losses(labels, outputs)
            loss = tf.nn.compute_average_loss(terms["supervised"], global_batch_size=global_batch)
            if "domain" in terms:
                loss += tf.nn.compute_average_loss(terms["domain"], global_batch_size=rows)
            # mixed precision: the loss is float32 (the body layer and losses are), as are the variables.
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        logged = {name: tf.nn.compute_average_loss(value, global_batch_size=rows if name == "domain" else
                                                   global_batch) for name, value in terms.items()
                  if name not in ("supervised", "total")}
        logged["total"] = loss
        labelled = source_rows(labels)
        logged["pa_mpjpe_mm"] = metrics.pa_mpjpe_tf(
            tf.boolean_mask(outputs["current/joints3d"], labelled),
            tf.boolean_mask(labels["joints3d_current"], labelled)) / strategy.num_replicas_in_sync
        logged["last_example"] = tf.reduce_max(tf.boolean_mask(labels["index"], labelled), keepdims=True)  # [1]
        return logged

    @tf.function
    def train_step(features, labels):
        per_replica = strategy.run(replica_step, args=(features, labels))
        # Over all workers: the chief's checkpoint must resume past every worker's examples.
        last_example = tf.reduce_max(strategy.gather(per_replica.pop("last_example"), axis=0))
        reduced = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}
        return reduced, last_example

    return train_step
