"""Writers of the real file formats, used by the simulator. Every file written here is read back by the same
decoders (`mhr_tf/data/`) that read a user's real downloads."""
from __future__ import annotations

from mhr_tf.data import provenance

# ---- SURREAL: <seq>_c<clip>.mp4, _info.mat, _segm.mat, _depth.mat -------------------------------------------
# The layout, camera and conventions are defined once, by the decoder (mhr_tf.data.surreal); `camera_to_surreal_world`
# there turns a body posed in the camera frame into the `pose` and world `joints3D` this writer takes.

SURREAL_SIM_SOURCE = provenance.SURREAL_SIMULATED_SOURCE  # `source` of simulated clips
SURREAL_DEFAULT_STRIDE = 50  # `stride`: percent overlap between clips; run0 of SURREAL uses 50 (README)
SURREAL_NUM_SH = 9  # `light`: SURREAL's 9 spherical-harmonics lighting coefficients per frame (main_part1.py)


def _surreal_array(value, shape: tuple[int, ...], name: str, dtype):
    import numpy as np

    value = np.asarray(value)
    if value.shape != shape:
        raise ValueError(f"write_surreal_clip: `{name}` has shape {value.shape} — expected {shape}")
    return value.astype(dtype)


def _surreal_per_frame(value, num_frames: int, name: str):
    """A scalar or `[T]` -> `[T]` float64."""
    import numpy as np

    value = np.asarray(value, dtype=np.float64)
    if value.ndim > 1 or value.size not in (1, num_frames):
        raise ValueError(f"write_surreal_clip: `{name}` has shape {value.shape} — expected a scalar or "
                         f"({num_frames},)")
    return np.broadcast_to(value.reshape(-1), (num_frames,))


def _matlab_cell_row(value, num_frames: int):
    """A string or T strings -> a `(1, T)` object array, which scipy writes as MATLAB's `1xT cell` (`bg`, `cloth`)."""
    import numpy as np

    names = [value] * num_frames if isinstance(value, str) else list(value)
    if len(names) != num_frames:
        raise ValueError(f"write_surreal_clip: {len(names)} names for {num_frames} frames")
    cell = np.empty((1, num_frames), dtype=object)
    cell[0, :] = names
    return cell


def _matlab_column(value, dtype):
    """A scalar or vector -> a `(N, 1)` column, as MATLAB stores SURREAL's per-frame vectors and scalars."""
    import numpy as np

    return np.asarray(value, dtype=dtype).reshape(-1, 1)


def surreal_info_fields(seq: str, clip: int, joints3d_world, pose, betas, gender: str, cam_loc, zrot, *,
                        light=None, cam_dist: float | None = None, stride: int = SURREAL_DEFAULT_STRIDE,
                        bg="", cloth="", source: str = SURREAL_SIM_SOURCE) -> dict:
    """The fields of a SURREAL `_info.mat`, with the shapes and dtypes of SURREAL's released files (which MATLAB
    re-saved: per-frame vectors are columns, `camLoc` is (3,1), scalars (1,1)).

    `joints3d_world [T, 24, 3]` metres and `pose [T, 72]` as SURREAL stores them (root before zrot and R90; see
    `mhr_tf.data.surreal.camera_to_surreal_world`); `betas [10]` or `[T, 10]`; `gender` "female" | "male";
    `cam_loc [3]`; `zrot` scalar or `[T]` radians; `light [9]` or `[9, T]` spherical-harmonics coefficients (default:
    ambient 1, others 0); `cam_dist` SURREAL's sampled camera distance, default the camera-to-pelvis distance of the
    first frame plus 1 m (main_part1.py offsets the pelvis reference by 1 m along x: in 01_01_c0001 `camDist` = 7.692
    and camLoc - pelvis = (6.694, 0.029, 0.027)); `bg`, `cloth`: a name or T names of the background and clothing
    images.
    """
    import numpy as np

    from mhr_tf.data import surreal

    pose = np.asarray(pose)
    num_frames = len(pose)
    pose = _surreal_array(pose, (num_frames, surreal.NUM_POSE), "pose", np.float32)
    # float32 as stored, so that the stored joints2D are exactly the rounded projections of the stored joints3D
    joints3d_world = _surreal_array(joints3d_world, (num_frames, surreal.NUM_JOINTS, 3), "joints3d_world",
                                    np.float32)
    betas = np.asarray(betas, dtype=np.float32)
    if betas.ndim == 1:  # SURREAL repeats the clip's one shape in every frame's column
        betas = np.tile(_surreal_array(betas, (surreal.NUM_BETAS,), "betas", np.float32), (num_frames, 1))
    betas = _surreal_array(betas, (num_frames, surreal.NUM_BETAS), "betas", np.float32)
    if gender not in surreal.GENDERS:
        raise ValueError(f"write_surreal_clip: gender {gender!r} — expected one of {surreal.GENDERS}")
    cam_loc = _surreal_array(cam_loc, (3,), "cam_loc", np.float32)  # as stored (`camLoc` is single)
    light = np.eye(SURREAL_NUM_SH, 1)[:, 0] if light is None else np.asarray(light, dtype=np.float32)
    if light.ndim == 1:  # one lighting per clip, repeated per frame as in main_part1.py
        light = np.tile(_surreal_array(light, (SURREAL_NUM_SH,), "light", np.float32)[:, None], (1, num_frames))
    light = _surreal_array(light, (SURREAL_NUM_SH, num_frames), "light", np.float32)
    if cam_dist is None:
        cam_dist = float(np.linalg.norm(cam_loc.astype(np.float64) - joints3d_world[0, surreal.PELVIS])) + 1.0
    return {
        "bg": _matlab_cell_row(bg, num_frames),
        "camDist": _matlab_column(cam_dist, np.float32),
        "camLoc": cam_loc.reshape(3, 1),
        "clipNo": _matlab_column(clip, np.uint8 if clip <= np.iinfo(np.uint8).max else np.uint16),
        "cloth": _matlab_cell_row(cloth, num_frames),
        "gender": _matlab_column([surreal.GENDERS.index(gender)] * num_frames, np.uint8),
        "joints2D": np.transpose(surreal.project_joints(joints3d_world, cam_loc), (2, 1, 0)).astype(np.float32),
        "joints3D": np.transpose(joints3d_world, (2, 1, 0)).copy(),
        "light": light,
        "pose": pose.T.copy(),
        "sequence": f"{seq}_c{clip:04d}",
        "shape": betas.T.copy(),
        "source": source,
        "stride": _matlab_column(stride, np.uint8),
        "zrot": _matlab_column(_surreal_per_frame(zrot, num_frames, "zrot"), np.float32),
    }


def write_surreal_clip(root, split: str, run: int, seq: str, clip: int, frames, segm, depth, joints3d_world, pose,
                       betas, gender: str, cam_loc, zrot, **info):
    """Write one clip exactly as SURREAL stores it; returns the .mp4's path.

    Writes `<root>/<split>/run<run>/<seq>/<seq>_c%04d.mp4` (30 fps) and its `_info.mat`, `_segm.mat`, `_depth.mat`.
    Images are taken as SURREAL stores them, i.e. mirrored (see `mhr_tf.data.surreal`): `frames [T, 240, 320, 3]`
    uint8 RGB; `segm [T, 240, 320]` part ids 0..24 (0 background, 1 + SMPL part), written as `segm_1..segm_T` uint8;
    `depth [T, 240, 320]` metres along each pixel's ray (Cycles' convention), 1e10 on the background, written as
    `depth_1..depth_T` float32. `_info.mat` is `surreal_info_fields(seq, clip, joints3d_world, pose, betas, gender,
    cam_loc, zrot, **info)`, whose `joints2D` are projected through SURREAL's camera and rounded as SURREAL does.
    `write_surreal_clip_from_camera` takes a body and images in the decoder's unmirrored camera frame instead.
    """
    import numpy as np
    import scipy.io

    from mhr_tf.data import surreal, videos

    if split not in surreal.SPLITS or run not in surreal.RUNS:
        raise ValueError(f"write_surreal_clip: split {split!r}, run {run} — expected {surreal.SPLITS}, "
                         f"{surreal.RUNS}")
    fields = surreal_info_fields(seq, clip, joints3d_world, pose, betas, gender, cam_loc, zrot, **info)
    num_frames = fields["pose"].shape[1]
    image_shape = (num_frames,) + surreal.SURREAL_IMAGE_HW
    frames = _surreal_array(frames, image_shape + (3,), "frames", np.uint8)
    segm = _surreal_array(segm, image_shape, "segm", np.int64)
    if segm.min() < 0 or segm.max() >= surreal.NUM_PART_IDS:
        raise ValueError(f"write_surreal_clip: `segm` spans {segm.min()}..{segm.max()} — expected part ids "
                         f"0..{surreal.NUM_PART_IDS - 1}")
    depth = _surreal_array(depth, image_shape, "depth", np.float32)

    mp4_path = surreal.clip_path(root, split, run, seq, clip)
    mp4_path.parent.mkdir(parents=True, exist_ok=True)
    videos.write_video(mp4_path, frames, fps=surreal.FPS)
    # SURREAL's generator (main_part1.py, main_part2.py) saves every .mat with scipy's compression.
    scipy.io.savemat(surreal.companion_path(mp4_path, "info"), fields, do_compression=True)
    scipy.io.savemat(surreal.companion_path(mp4_path, "segm"),
                     {f"segm_{t + 1}": s.astype(np.uint8) for t, s in enumerate(segm)}, do_compression=True)
    scipy.io.savemat(surreal.companion_path(mp4_path, "depth"),
                     {f"depth_{t + 1}": d for t, d in enumerate(depth)}, do_compression=True)
    return mp4_path


def write_surreal_clip_from_camera(root, split: str, run: int, seq: str, clip: int, frames, segm, depth,
                                   joints3d_cam, pose_cam, betas, gender: str, cam_loc, zrot, **info):
    """`write_surreal_clip` for a body and images in the decoder's unmirrored camera frame (what `load_clip`
    returns, and what a renderer with SURREAL's intrinsics sees): `pose_cam [T, 72]`, `joints3d_cam [T, 24, 3]`,
    `frames`, `segm`, `depth` (ray distances; `surreal.ray_distance_from_planar_depth` converts a z-buffer).
    Converts with `surreal.camera_to_surreal_world` and `surreal.mirror_images`; `load_clip` gives them back."""
    from mhr_tf.data import surreal

    pose, joints3d_world = surreal.camera_to_surreal_world(pose_cam, joints3d_cam, cam_loc, zrot)
    return write_surreal_clip(root, split, run, seq, clip, surreal.mirror_images(frames), surreal.mirror_images(segm),
                              surreal.mirror_images(depth), joints3d_world, pose, betas, gender, cam_loc, zrot, **info)


# ---- 3DPW: sequenceFiles/<split>/<seq>.pkl, imageFiles/<seq>/image_%05d.jpg; OpenPose JSON ------------------
# The layout is defined once, by the decoders (mhr_tf.data.threedpw, mhr_tf.data.openpose); these writers produce it.

THREEDPW_PICKLE_PROTOCOL = 2  # the highest protocol Python 2 reads; 3DPW's own files are Python-2 pickles
THREEDPW_JPEG_QUALITY = 95
# Keys of a `people` entry of write_threedpw_sequence: required, then optional (with the defaults documented there).
THREEDPW_PERSON_REQUIRED = ("betas", "poses", "trans", "gender", "joints3d", "keypoints2d")
THREEDPW_PERSON_OPTIONAL = ("campose_valid", "betas_clothed", "v_template_clothed", "poses_60Hz", "trans_60Hz",
                            "texture_map")


def write_threedpw_sequence(root, split: str, name: str, people: list[dict], cam_poses, cam_intrinsics,
                            images=None, *, img_frame_ids=None, jpeg_quality: int = THREEDPW_JPEG_QUALITY):
    """Write one sequence in 3DPW's layout; returns the pickle's path.

    Writes `<root>/sequenceFiles/<split>/<name>.pkl`, a protocol-2 pickle of the dict 3DPW's files hold (every key,
    per-person keys as lists, 3DPW's dtypes), and, when `images` ([N, H, W, 3] uint8 RGB) are given,
    `<root>/imageFiles/<name>/image_%05d.jpg`. N frames; `people` is one dict per person with
      'betas' [10]; 'poses' [N, 72] SMPL axis-angle, world; 'trans' [N, 3] metres, world;
      'gender' 'm' | 'f' | 'male' | 'female';
      'joints3d' [N, 24, 3] SMPL joints, metres, world (written as 'jointPositions' [N, 72]);
      'keypoints2d' [N, 18, 3] COCO-18 (x px, y px, confidence), all zero in a frame without a detection
        (written as 'poses2d' [N, 3, 18]);
      optional 'campose_valid' [N] (default all true), 'betas_clothed' [10] (default 'betas'),
      'v_template_clothed' [V, 3] (default an empty [0, 3]), 'poses_60Hz' / 'trans_60Hz' (default: each image frame
      held until the next one at the 60 Hz ids), 'texture_map' (default none: 'texture_maps' is then []).
    `cam_poses` [N, 4, 4] world → camera; `cam_intrinsics` [3, 3] K; `img_frame_ids` [N] ascending 60 Hz indices,
    default 0, 2, 4, … as in 3DPW (30 Hz images of 60 Hz IMU data).
    """
    import os
    import pickle
    from pathlib import Path

    import numpy as np

    from mhr_tf.data import threedpw

    if split not in threedpw.SPLITS:
        raise ValueError(f"3DPW split {split!r} is not one of {threedpw.SPLITS}")
    if not people:
        raise ValueError(f"3DPW sequence {name!r}: `people` is empty — expected one dict per person")
    cam_poses = _threedpw_array(cam_poses, None, "cam_poses", (-1, 4, 4))
    num_frames = len(cam_poses)
    frame_ids = (np.arange(num_frames) * 2 if img_frame_ids is None
                 else _threedpw_array(img_frame_ids, None, "img_frame_ids", (num_frames,), np.int64))
    if np.any(np.diff(frame_ids) <= 0) or frame_ids[0] < 0:
        raise ValueError(f"3DPW sequence {name!r}: img_frame_ids must be non-negative and ascending")
    persons = [_threedpw_person(person, i, num_frames, frame_ids) for i, person in enumerate(people)]
    content = {key: [p[key] for p in persons] for key in persons[0] if key != "texture_map"}
    content.update(
        sequence=str(name),
        cam_poses=cam_poses,
        cam_intrinsics=_threedpw_array(cam_intrinsics, None, "cam_intrinsics", (3, 3)),
        img_frame_ids=frame_ids.astype(np.uint16 if frame_ids[-1] < 2 ** 16 else np.int64),  # 3DPW: uint16
        texture_maps=[p["texture_map"] for p in persons if p["texture_map"] is not None])

    path = Path(root) / threedpw.SEQUENCE_DIR / split / f"{name}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")  # a crashed or parallel writer never leaves half a pickle
    with open(partial, "wb") as stream:
        pickle.dump(content, stream, protocol=THREEDPW_PICKLE_PROTOCOL)
    os.replace(partial, path)
    if images is not None:
        _threedpw_write_images(Path(root) / threedpw.IMAGE_DIR / str(name), images, num_frames, jpeg_quality)
    return path


def _threedpw_person(person: dict, index: int, num_frames: int, frame_ids) -> dict:
    """One `people` entry → its values under 3DPW's key names and dtypes."""
    import numpy as np

    from mhr_tf.data import threedpw

    unknown = sorted(set(person) - set(THREEDPW_PERSON_REQUIRED) - set(THREEDPW_PERSON_OPTIONAL))
    missing = [key for key in THREEDPW_PERSON_REQUIRED if key not in person]
    if unknown or missing:
        raise ValueError(f"people[{index}]: keys {missing} missing, {unknown} unknown — expected "
                         f"{THREEDPW_PERSON_REQUIRED} and optionally {THREEDPW_PERSON_OPTIONAL}")
    gender = str(person["gender"])
    codes = {**{code: code for code in threedpw.GENDERS}, **{full: code for code, full in threedpw.GENDERS.items()}}
    if gender not in codes:
        raise ValueError(f"people[{index}]: 'gender' is {gender!r} — expected one of {sorted(codes)}")

    def array(key, shape, dtype=np.float64):
        return _threedpw_array(person[key], index, key, shape, dtype)

    n, num_joints, num_keypoints = num_frames, threedpw.NUM_SMPL_JOINTS, threedpw.NUM_KEYPOINTS
    betas = array("betas", (threedpw.NUM_BETAS,))
    poses, trans = array("poses", (n, 72)), array("trans", (n, 3))
    # 60 Hz streams by default hold each image frame until the next one, so poses == poses_60Hz[img_frame_ids].
    length_60hz = int(frame_ids[-1]) + int(frame_ids[-1] - frame_ids[-2] if n > 1 else 1)
    hold = np.maximum(np.searchsorted(frame_ids, np.arange(length_60hz), side="right") - 1, 0)
    return {
        "betas": betas,
        "betas_clothed": array("betas_clothed", (threedpw.NUM_BETAS,)) if "betas_clothed" in person else betas,
        "poses": poses,
        "trans": trans,
        "poses_60Hz": array("poses_60Hz", (-1, 72)) if "poses_60Hz" in person else poses[hold],
        "trans_60Hz": array("trans_60Hz", (-1, 3)) if "trans_60Hz" in person else trans[hold],
        "v_template_clothed": (array("v_template_clothed", (-1, 3)) if "v_template_clothed" in person
                               else np.zeros((0, 3))),
        "genders": codes[gender],
        "jointPositions": array("joints3d", (n, num_joints, 3)).reshape(n, 3 * num_joints),
        "poses2d": np.ascontiguousarray(array("keypoints2d", (n, num_keypoints, 3)).transpose(0, 2, 1)),
        "campose_valid": (array("campose_valid", (n,), np.uint8) if "campose_valid" in person
                          else np.ones(n, np.uint8)),  # 3DPW stores it as uint8
        "texture_map": person.get("texture_map"),
    }


def _threedpw_array(value, person, key: str, shape: tuple[int, ...], dtype=None):
    """`value` as an array of `shape` (-1 = any length), else a ValueError naming the person and the key."""
    import numpy as np

    array = np.asarray(value, dtype=dtype if dtype is not None else np.float64)
    where = f"people[{person}]['{key}']" if person is not None else f"'{key}'"
    if array.ndim != len(shape) or any(s not in (-1, a) for s, a in zip(shape, array.shape)):
        raise ValueError(f"3DPW writer: {where} has shape {array.shape} — expected {shape} (-1: any)")
    return array


def _threedpw_write_images(directory, images, num_frames: int, jpeg_quality: int) -> None:
    import cv2
    import numpy as np

    from mhr_tf.data import threedpw

    if len(images) != num_frames:
        raise ValueError(f"3DPW writer: {len(images)} images for {num_frames} frames of cam_poses")
    directory.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"3DPW writer: image {i} is {image.dtype} {image.shape} — expected [H, W, 3] uint8 RGB")
        target = directory / (threedpw.IMAGE_PATTERN % i)
        if not cv2.imwrite(str(target), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]):
            raise OSError(f"{target}: OpenCV could not write the JPEG")


def write_openpose_json(path, people, layout: str = "body_25"):
    """Write one frame as OpenPose's `--write_json` does; returns the path.

    `people` [P, K, 3] (x px, y px, confidence) in `layout` ('coco_18', K = 18 or 'body_25', K = 25); P = 0 writes
    a frame without people.
    """
    import json
    from pathlib import Path

    import numpy as np

    from mhr_tf.data import openpose

    if layout not in openpose.LAYOUTS:
        raise ValueError(f"OpenPose layout {layout!r} is not one of {sorted(openpose.LAYOUTS)}")
    num_joints = len(openpose.LAYOUTS[layout])
    people = np.asarray(people, np.float32)
    if people.size == 0:
        people = people.reshape(0, num_joints, 3)
    if people.ndim != 3 or people.shape[1:] != (num_joints, 3):
        raise ValueError(f"OpenPose writer: people have shape {people.shape} — expected (P, {num_joints}, 3) "
                         f"for {layout}")
    empty_parts = ("face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d", "pose_keypoints_3d",
                   "face_keypoints_3d", "hand_left_keypoints_3d", "hand_right_keypoints_3d")
    content = {"version": openpose.JSON_VERSION, "people": [
        {"person_id": [-1], openpose.POSE_KEYS[0]: person.reshape(-1).astype(np.float64).tolist(),
         **{part: [] for part in empty_parts}}
        for person in people]}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


def write_openpose_dir(directory, people_per_frame, layout: str = "body_25", name: str = "video",
                       first_frame: int = 0):
    """One `<name>_<frame:012d>_keypoints.json` per entry of `people_per_frame` ([P_t, K, 3] each); the paths."""
    from pathlib import Path

    from mhr_tf.data import openpose

    return [write_openpose_json(Path(directory) / openpose.FILE_PATTERN.format(name=name, frame=first_frame + t),
                                people, layout)
            for t, people in enumerate(people_per_frame)]
