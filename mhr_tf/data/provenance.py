"""How a file in a real dataset's layout says it was written by our simulator, not taken from the real dataset.

The simulator (`mhr_tf.sim`) writes SURREAL, Kinetics and 3DPW layouts byte for byte, so the only way to tell its
files from real downloads is the marker each one carries. The markers are part of the format definitions, like the
decoders' field names, and live here so that code handling real data (`mhr_tf.datasets`, the decoders) can test
for them without importing the simulator; the simulator imports them from here when it writes.
"""
from __future__ import annotations

# SURREAL: the `source` field of a clip's `_info.mat` (SURREAL's own clips say 'cmu' or 'h36m').
SURREAL_SIMULATED_SOURCE = "mhr_tf_sim"
# SURREAL: simulated sequence folders are named sim00001, sim00002, ... (SURREAL's are CMU take names like 01_01).
SURREAL_SIMULATED_NAME_PREFIX = "sim"
# Kinetics-style background videos: every id starts with this (Kinetics ids are 11-character YouTube ids), and
# every class folder with `BACKGROUND_SIMULATED_LABEL_PREFIX`.
BACKGROUND_SIMULATED_ID_PREFIX = "simulated_"
BACKGROUND_SIMULATED_LABEL_PREFIX = "sim_"
# 3DPW layout: simulated sequences are named simulated_00001, ... (never a 3DPW name such as downtown_walking_00).
THREEDPW_SIMULATED_PREFIX = "simulated_"


def is_simulated_surreal_source(source: str) -> bool:
    """Whether a SURREAL `_info.mat` `source` value marks a simulated clip."""
    return str(source).strip() == SURREAL_SIMULATED_SOURCE


def is_simulated_background_id(video_id: str) -> bool:
    """Whether a background video's id (its file stem) marks a simulated video."""
    return str(video_id).startswith(BACKGROUND_SIMULATED_ID_PREFIX)


def is_simulated_threedpw_sequence(name: str) -> bool:
    """Whether a 3DPW-layout sequence name marks a simulated sequence."""
    return str(name).startswith(THREEDPW_SIMULATED_PREFIX)
