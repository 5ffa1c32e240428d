"""The temporal model of Motion HMR (paper §3.2, App. B): a bidirectional LSTM over the per-pair trunk features."""
from __future__ import annotations

import keras

# App. B: "Our LSTM contains 1024 hidden units".
LSTM_UNITS = 1024


def bidirectional_lstm(units: int = LSTM_UNITS, name: str = "temporal") -> keras.layers.Layer:
    """`[B, P, D] -> [B, P, 2 * units]`: forward and backward states concatenated at every pair.

    §3.2: the LSTM lets the model "update its beliefs when the pose is easily identified, and otherwise leave them
    unchanged"; bidirectional so that every pair sees the whole clip.
    """
    return keras.layers.Bidirectional(keras.layers.LSTM(units, return_sequences=True), merge_mode="concat", name=name)
