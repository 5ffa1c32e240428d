"""Writers of the real file formats, used by the simulator. Every file written here is read back by the same
decoders (`mhr_tf/data/`) that read a user's real downloads."""
from __future__ import annotations

# ---- SURREAL: <seq>_c<clip>.mp4, _info.mat, _segm.mat, _depth.mat -------------------------------------------

# ---- 3DPW: sequenceFiles/<split>/<seq>.pkl, imageFiles/<seq>/image_%05d.jpg; OpenPose JSON ------------------
