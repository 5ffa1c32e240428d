"""Pictures of what the simulator makes: the body model in several shapes and poses, and contact sheets of each
set as the decoders read it back."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mhr_tf import geometry
from mhr_tf.body import joints as joint_sets
from mhr_tf.data import surreal, threedpw

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
    from mhr_tf import render
    from mhr_tf.sim import appearance
    vertices, _ = smpl.forward_numpy(model, betas[None], pose[None])
    turn = Rotation.from_euler("y", yaw_deg, degrees=True).as_matrix()
    v = vertices[0].astype(np.float64) @ turn.T @ SMPL_TO_CAMERA.T
    v -= (v.max(axis=0) + v.min(axis=0)) / 2.0
    v[:, 2] += distance_m
    height, width = image_hw
    intrinsics = geometry.Intrinsics(300.0, 300.0, (width - 1) / 2.0, (height - 1) / 2.0)
    colours = appearance.clothing_colors(model.v_template, model.part_ids, rng)
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


# ---- previews: contact sheets of what the decoders read back ----------------------------------------------------

PREVIEW_MAX_ROWS = 4
PREVIEW_COLUMNS = 6
_TEXT = dict(fontFace=cv2.FONT_HERSHEY_SIMPLEX, fontScale=0.4, thickness=1, lineType=cv2.LINE_AA)


def _part_colours() -> np.ndarray:
    """[25, 3] uint8 RGB for segmentation pictures: black background, then one hue per SMPL part, spread so that
    parts next to each other in SMPL's order differ."""
    num_parts = len(joint_sets.SMPL_PARTS)
    ramp = ((np.arange(num_parts) * 7) % num_parts * (255 // (num_parts - 1))).astype(np.uint8)
    colours = cv2.applyColorMap(ramp[:, None], cv2.COLORMAP_HSV)[:, 0, ::-1]
    return np.concatenate([np.zeros((1, 3), np.uint8), colours])


_SKELETON = [(joint_sets.SMPL_PARENTS[j], j) for j in range(1, len(joint_sets.SMPL_24))]
_COCO_EDGES = [("neck", "nose"), ("neck", "right_shoulder"), ("right_shoulder", "right_elbow"),
               ("right_elbow", "right_wrist"), ("neck", "left_shoulder"), ("left_shoulder", "left_elbow"),
               ("left_elbow", "left_wrist"), ("neck", "right_hip"), ("right_hip", "right_knee"),
               ("right_knee", "right_ankle"), ("neck", "left_hip"), ("left_hip", "left_knee"),
               ("left_knee", "left_ankle"), ("nose", "right_eye"), ("nose", "left_eye"), ("right_eye", "right_ear"),
               ("left_eye", "left_ear")]


def _is_left(name: str) -> bool:
    return name.startswith("left_")


def _label(image: np.ndarray, text: str) -> np.ndarray:
    cv2.putText(image, text, (4, 13), color=(0, 0, 0), **{**_TEXT, "thickness": 3})
    cv2.putText(image, text, (4, 13), color=(255, 255, 255), **_TEXT)
    return image


def _draw_points(image: np.ndarray, points: np.ndarray, names, edges, ok=None) -> np.ndarray:
    """Draw a skeleton: the person's left side red, right side blue, the middle green; `ok [K]` hides points."""
    ok = np.ones(len(points), bool) if ok is None else ok
    index = {n: i for i, n in enumerate(names)}
    colour = [(255, 60, 60) if _is_left(n) else (60, 120, 255) if n.startswith("right_") else (60, 220, 60)
              for n in names]
    for a, b in edges:
        i, j = (index[a], index[b]) if isinstance(a, str) else (a, b)
        if ok[i] and ok[j]:
            cv2.line(image, tuple(np.rint(points[i]).astype(int)), tuple(np.rint(points[j]).astype(int)),
                     colour[j], 1, cv2.LINE_AA)
    for i, p in enumerate(points):
        if ok[i]:
            cv2.circle(image, tuple(np.rint(p).astype(int)), 2, colour[i], -1, cv2.LINE_AA)
    return image


def _columns(num_frames: int) -> np.ndarray:
    return np.unique(np.linspace(0, num_frames - 1, min(PREVIEW_COLUMNS, num_frames)).round().astype(int))


def _save_sheet(rows: list[np.ndarray], png) -> Path:
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    sheet = np.concatenate(rows, axis=0)
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(png), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{png}: OpenCV could not write the PNG")
    return png


def _spaced(tiles: list[np.ndarray]) -> np.ndarray:
    gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([x for tile in tiles for x in (tile, gap)][:-1], axis=1)


def preview_surreal(root, png) -> Path:
    """Contact sheet of a SURREAL-layout set as the decoder reads it: per clip, frames with the 24 joints of
    `joints2d` (left side red), and the segmentation coloured by part."""
    mp4s = sorted(Path(root).glob("*/run*/*/*_c*.mp4"))[:PREVIEW_MAX_ROWS]
    if not mp4s:
        raise FileNotFoundError(f"{root}: no SURREAL clips (<root>/<split>/run<r>/<seq>/<seq>_c0001.mp4)")
    rows = []
    for mp4 in mp4s:
        clip = surreal.load_clip(mp4, load_depth=False)
        picks = _columns(len(clip.frames))
        frames = [_draw_points(clip.frames[t].copy(), clip.joints2d[t], joint_sets.SMPL_24, _SKELETON) for t in picks]
        segm = [_draw_points(_part_colours()[clip.segm[t]], clip.joints2d[t], joint_sets.SMPL_24, _SKELETON)
                for t in picks]
        height_px = np.ptp(clip.joints2d[..., 1], axis=1).mean()
        _label(frames[0], f"{mp4.parent.parent.parent.name}/{mp4.stem} {clip.gender}, joints span {height_px:.0f}px")
        for tile, t in zip(frames[1:], picks[1:]):
            _label(tile, f"t={t}")
        rows += [_spaced(frames), _spaced(segm), np.full((6, 1, 3), 255, np.uint8)]
    return _save_sheet(rows, png)


def preview_backgrounds(root, png) -> Path:
    """Contact sheet of a Kinetics-style folder of background videos: a few frames of each."""
    from mhr_tf.data import videos
    entries = videos.list_videos(root)[:PREVIEW_MAX_ROWS * 2]
    rows = []
    for entry in entries:
        frames = videos.read_video(entry.path)
        tiles = [cv2.resize(frames[t], (frames.shape[2] // 2, frames.shape[1] // 2), interpolation=cv2.INTER_AREA)
                 for t in _columns(len(frames))]
        _label(tiles[0], f"{entry.label}/{entry.video_id}")
        rows += [_spaced(tiles), np.full((4, 1, 3), 255, np.uint8)]
    return _save_sheet(rows, png)


def preview_threedpw(root, png) -> Path:
    """Contact sheet of a 3DPW-layout set as the decoder reads it: frames with each person's `poses2d` (confidence
    > 0.1; left side red) and, in white, the projection of the decoder's camera-frame joints."""
    pickles = sorted(Path(root).glob(f"{threedpw.SEQUENCE_DIR}/*/*.pkl"))[:PREVIEW_MAX_ROWS]
    if not pickles:
        raise FileNotFoundError(f"{root}: no sequences (<root>/{threedpw.SEQUENCE_DIR}/<split>/<seq>.pkl)")
    rows = []
    for path in pickles:
        tracks = threedpw.load_sequence(path)
        picks = _columns(tracks[0].num_frames)
        tiles = []
        for t in picks:
            image = threedpw.read_image(tracks[0].image_paths[t])
            for track in tracks:
                k = track.cam_intrinsics
                uv = geometry.project(track.joints3d_cam[t].astype(np.float64),
                                      geometry.Intrinsics(k[0, 0], k[1, 1], k[0, 2], k[1, 2]))
                for p in uv:
                    cv2.circle(image, tuple(np.rint(p).astype(int)), 1, (255, 255, 255), -1)
                kp = track.keypoints2d[t]
                _draw_points(image, kp[:, :2], joint_sets.COCO_18, _COCO_EDGES, ok=kp[:, 2] > 0.1)
            tiles.append(_label(image, f"t={t}" + ("" if tracks[0].campose_valid[t] else " campose invalid")))
        _label(tiles[0], f"{path.parent.name}/{path.stem}, {len(tracks)} person(s)")
        rows += [_spaced(tiles), np.full((6, 1, 3), 255, np.uint8)]
    return _save_sheet(rows, png)


def preview(kind: str, root, png) -> Path:
    """The contact sheet of a set of `kind` ("surreal", "backgrounds", "threedpw")."""
    makers = {"surreal": preview_surreal, "backgrounds": preview_backgrounds, "threedpw": preview_threedpw}
    if kind not in makers:
        raise ValueError(f"preview: kind {kind!r}, expected one of {sorted(makers)}")
    return makers[kind](root, png)
