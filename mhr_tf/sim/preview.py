"""Pictures of what the simulator makes: the body model in several shapes and poses, contact sheets of clips."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mhr_tf import geometry
from mhr_tf.body import joints as joint_sets

# SMPL's rest frame is y up with the body facing +z; the camera's is y down looking along +z. A half turn about x
# maps one to the other and turns the body to face the camera.
SMPL_TO_CAMERA = np.diag([1.0, -1.0, -1.0])


def _joint(name: str) -> int:
    return joint_sets.SMPL_24.index(name)


def showcase_poses() -> dict[str, np.ndarray]:
    """A few hand-set poses [72] (axis-angle, SMPL's local frames) that exercise the shoulders, hips, knees and
    elbows up to 90 degrees."""
    def pose(**rotations: tuple[float, float, float]) -> np.ndarray:
        p = np.zeros((24, 3))
        for name, (x, y, z) in rotations.items():
            p[_joint(name)] = np.radians([x, y, z])
        return p.reshape(72)
    arms_down = dict(left_shoulder=(0, 0, -75), right_shoulder=(0, 0, 75))
    return {
        "T-pose": pose(),
        "standing": pose(**arms_down),
        "walking": pose(left_hip=(-30, 0, 0), right_hip=(25, 0, 0), right_knee=(40, 0, 0),
                        left_elbow=(0, -30, 0), right_elbow=(0, 30, 0), left_shoulder=(0, 20, -75),
                        right_shoulder=(0, 20, 75)),
        "squat": pose(left_hip=(-90, 0, 0), right_hip=(-90, 0, 0), left_knee=(90, 0, 0), right_knee=(90, 0, 0),
                      left_shoulder=(0, 60, -10), right_shoulder=(0, -60, 10)),
        "waving": pose(left_shoulder=(0, 0, -75), right_shoulder=(0, 0, -40), right_elbow=(0, 90, 0),
                       spine1=(10, 0, 0)),
    }


def showcase_shapes() -> dict[str, np.ndarray]:
    """Betas [10]: the mean and +-2.5 along the first shape components."""
    shapes = {"mean": np.zeros(10)}
    for k in (0, 1):
        for sign, label in ((1, "+"), (-1, "-")):
            betas = np.zeros(10)
            betas[k] = 2.5 * sign
            shapes[f"beta{k}{label}"] = betas
    return shapes


def render_body(model, betas: np.ndarray, pose: np.ndarray, rng: np.random.Generator, distance_m: float = 3.2,
                image_hw=(240, 200), yaw_deg: float = 20.0):
    """One rendered picture [H, W, 3] uint8 of the posed body, centred, `distance_m` in front of the camera."""
    from scipy.spatial.transform import Rotation
    from mhr_tf.body import smpl
    from mhr_tf.sim import render
    vertices, _ = smpl.forward_numpy(model, betas[None], pose[None])
    turn = Rotation.from_euler("y", yaw_deg, degrees=True).as_matrix()
    v = vertices[0].astype(np.float64) @ turn.T @ SMPL_TO_CAMERA.T
    v -= (v.max(axis=0) + v.min(axis=0)) / 2.0
    v[:, 2] += distance_m
    height, width = image_hw
    intrinsics = geometry.Intrinsics(300.0, 300.0, (width - 1) / 2.0, (height - 1) / 2.0)
    colours = render.clothing_colors(model.v_template, model.part_ids, rng)
    background = np.full((height, width, 3), 235, np.uint8)
    return render.render(v, model.faces, intrinsics, image_hw, vertex_colors=colours, part_ids=model.part_ids,
                         light_dir=np.array([-0.3, -0.6, -0.75]), ambient=0.45, background=background)


def body_sheet(out_png, body_model_path=None, seed: int = 0) -> Path:
    """A PNG grid of the body model: rows are shapes (and the three genders), columns are poses."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mhr_tf.body import smpl
    poses, shapes = showcase_poses(), showcase_shapes()
    rows = [("neutral", name, betas) for name, betas in shapes.items()]
    rows += [(gender, "mean", np.zeros(10)) for gender in ("female", "male")]
    figure, axes = plt.subplots(len(rows), len(poses), figsize=(1.6 * len(poses), 2.3 * len(rows)))
    for r, (gender, shape_name, betas) in enumerate(rows):
        model = smpl.load_body_model(body_model_path, gender)
        for c, (pose_name, pose) in enumerate(poses.items()):
            picture = render_body(model, betas, pose, np.random.default_rng([seed, r]))
            ax = axes[r, c]
            ax.imshow(picture.rgb)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(pose_name, fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{gender}\n{shape_name}", fontsize=8)
    source = smpl.load_body_model(body_model_path, "neutral").source
    figure.suptitle(f"body model: {Path(str(source)).parent.name}/{Path(str(source)).name}", fontsize=9)
    figure.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png, dpi=110)
    plt.close(figure)
    return out_png
