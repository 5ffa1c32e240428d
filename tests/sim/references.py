"""Independent references for the simulator's tests: float64 numpy written here, and the body model."""
import numpy as np
from scipy.spatial.transform import Rotation

from mhr_tf.body import smpl


def rotations(pose):
    """[..., 24, 3, 3] joint rotation matrices of SMPL axis-angle poses [..., 72]."""
    return Rotation.from_rotvec(np.asarray(pose, np.float64).reshape(-1, 3)).as_matrix().reshape(
        np.shape(pose)[:-1] + (24, 3, 3))


def body(gender):
    return smpl.load_body_model(None, gender)


def forward(model, betas, pose, trans=None):
    """(vertices [T, V, 3], joints [T, 24, 3]) float64 of the posed body."""
    n = len(pose)
    v, j = smpl.forward_numpy(model, np.tile(np.asarray(betas, np.float64), (n, 1)), np.asarray(pose, np.float64),
                              None if trans is None else np.asarray(trans, np.float64))
    return v.astype(np.float64), j.astype(np.float64)


def project(points, fx, fy, cx, cy):
    """Pinhole projection [..., 2] of camera-frame points [..., 3] (x right, y down, z forward)."""
    points = np.asarray(points, np.float64)
    return np.stack([fx * points[..., 0] / points[..., 2] + cx, fy * points[..., 1] / points[..., 2] + cy], -1)
