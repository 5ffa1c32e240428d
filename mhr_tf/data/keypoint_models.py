"""2D pose models the user brings, as a keypoint source: one `.tflite` or `.onnx` file, chosen by its suffix.

    image (RGB uint8) ─► affine into the model's input (letterbox, or a person box) ─► backend ─► decoder
        ─► keypoints [P, K, 3] (x px, y px, confidence) in the image, boxes [P, 4], scores [P]

Backends: `.tflite` runs on LiteRT's interpreter (`ai_edge_litert`) when installed, else TensorFlow's own
`tf.lite.Interpreter`; `.onnx` runs on onnxruntime, an optional extra imported on use
(`pip install 'mhr_tf[onnx]'`). No weights ship with the project and none are downloaded.

Models, told apart by their input and output signatures (`detect_kind`; pass `kind=` to force one):
- MoveNet SinglePose Lightning / Thunder (TF Hub model card): input [1, H, W, 3] RGB int32 / uint8 / float32 in
  0..255 (192 or 256 square); output [1, 1, 17, 3] of (y, x, score), y and x normalised to the input frame, COCO-17.
  The whole frame is letterboxed into the input (the model card's resize_with_pad), or each given box is cropped.
- MoveNet MultiPose Lightning: input [1, H, W, 3] (a dynamic-shape model takes H, W multiples of 32, the larger
  256); output [1, 6, 56]: per person 17 x (y, x, score), then the box (ymin, xmin, ymax, xmax) and its score,
  all normalised.
- RTMPose (mmpose's projects/rtmpose, mmdeploy's ONNX export, top-down): input [N, 3, 256, 192] RGB normalised by
  ImageNet's mean (123.675, 116.28, 103.53) and std (58.395, 57.12, 57.375) (the configs' PoseDataPreprocessor with
  bgr_to_rgb); each person box, enlarged 1.25x and widened to the input's aspect ratio, is warped into the input
  with its centre at the input's centre. Outputs `simcc_x` [N, K, 2 W] and `simcc_y` [N, K, 2 H] (SimCC, split ratio
  2.0): the argmax / 2 is the input pixel, the confidence the smaller of the two maxima (mmpose's
  `get_simcc_maximum`; rtmlib averages them instead), 0 where it is <= 0. Without boxes the whole frame is the box
  (as rtmlib does).
- RTMO (one-stage, mmdeploy's ONNX export with its NMS inside): input [1, 3, 640, 640] BGR 0..255 unnormalised (its
  data_preprocessor has mean 0, std 1 and no bgr_to_rgb), the frame letterboxed with padding value 114 and centred
  (mmpose's BottomupResize); outputs `dets` [1, N, 5] (x0, y0, x1, y1, score) and `keypoints` [1, N, K, 3]
  (x, y, score) in input pixels. People below `min_person_score` go, then a greedy NMS at `nms_iou` (as rtmlib).

Coordinates: image and input pixels are indexed at pixel centres (OpenCV's convention), and the affine that put the
image into the input is inverted exactly to bring keypoints back, letterbox padding included.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from mhr_tf.body import joints
from mhr_tf.data import keypoint_sources

ONNX_EXTRA_HINT = "pip install 'mhr_tf[onnx]'"
KINDS = ("movenet_singlepose", "movenet_multipose", "rtmpose", "rtmo")

# MoveNet (TF Hub model cards).
MOVENET_NUM_KEYPOINTS = 17
MOVENET_MULTIPOSE_VALUES = 3 * MOVENET_NUM_KEYPOINTS + 5
MOVENET_MULTIPOSE_LONG_SIDE = 256   # dynamic-shape MultiPose: "the larger side 256", sides multiples of 32
MOVENET_MULTIPOSE_STRIDE = 32
MOVENET_MIN_PERSON_SCORE = 0.2
# RTMPose (configs/body_2d_keypoint/rtmpose: SimCCLabel codec and PoseDataPreprocessor; mmpose's top-down boxes).
TOP_DOWN_BOX_PADDING = 1.25
SIMCC_SPLIT_RATIO = 2.0
IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)
# RTMO (configs/body_2d_keypoint/rtmo: BottomupResize pad_val 114; rtmlib's NMS threshold).
RTMO_PAD_VALUE = 114.0
RTMO_MIN_PERSON_SCORE = 0.5
RTMO_NMS_IOU = 0.45


class PoseModelError(ValueError):
    """A model file whose signature is not one of the supported pose models."""


# --------------------------------------------------------------------------------------------------------------------
# Backends

@dataclasses.dataclass
class _Tensor:
    name: str
    shape: tuple          # None for a dynamic dimension
    dtype: np.dtype


class Backend:
    """One model file: its input and outputs, and `run(array) -> [outputs in `outputs` order]`."""
    path: Path
    input: _Tensor
    outputs: list[_Tensor]

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError


class TFLiteBackend(Backend):
    def __init__(self, path: Path):
        self.path = path
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # TensorFlow's own interpreter, deprecated in favour of LiteRT but still shipped
            import tensorflow as tf
            Interpreter = tf.lite.Interpreter
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # tf.lite.Interpreter's deprecation notice
            try:
                self.interpreter = Interpreter(model_path=str(path))
            except (ValueError, RuntimeError) as error:
                raise PoseModelError(f"{path}: not a readable TFLite model ({error})") from error
        self.interpreter.allocate_tensors()
        details = self.interpreter.get_input_details()
        if len(details) != 1:
            raise PoseModelError(f"{path}: {len(details)} inputs — expected one image input")
        self._input_index = details[0]["index"]
        self._allocated = tuple(int(d) for d in details[0]["shape"])
        self.input = _tensor(details[0])
        self._outputs = self.interpreter.get_output_details()
        self.outputs = [_tensor(d) for d in self._outputs]

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        if tuple(array.shape) != self._allocated:  # a dynamic-shape model (MoveNet MultiPose) is resized per call
            self.interpreter.resize_tensor_input(self._input_index, list(array.shape))
            self.interpreter.allocate_tensors()
            self._allocated = tuple(array.shape)
        self.interpreter.set_tensor(self._input_index, array.astype(self.input.dtype, copy=False))
        self.interpreter.invoke()
        return [np.array(self.interpreter.get_tensor(d["index"])) for d in self._outputs]


def _tensor(details: dict) -> _Tensor:
    signature = details.get("shape_signature", details["shape"])
    return _Tensor(details["name"], tuple(None if int(d) < 0 else int(d) for d in signature),
                   np.dtype(details["dtype"]))


_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int32)": np.int32,
                "tensor(float16)": np.float16, "tensor(double)": np.float64, "tensor(int64)": np.int64}


class OnnxBackend(Backend):
    def __init__(self, path: Path):
        self.path = path
        try:
            import onnxruntime
        except ImportError as error:
            raise ImportError(f"{path}: running an .onnx pose model needs onnxruntime, an optional dependency — "
                              f"{ONNX_EXTRA_HINT}") from error
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for unreadable graphs
            raise PoseModelError(f"{path}: not a readable ONNX model ({type(error).__name__}: {error})") from error
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise PoseModelError(f"{path}: {len(inputs)} inputs — expected one image input")
        self.input = self._tensor(inputs[0])
        self.outputs = [self._tensor(o) for o in self.session.get_outputs()]

    @staticmethod
    def _tensor(arg) -> _Tensor:
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)
        return _Tensor(arg.name, shape, np.dtype(_ONNX_DTYPES.get(arg.type, np.float32)))

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        return self.session.run([o.name for o in self.outputs], {self.input.name: array.astype(self.input.dtype)})


def load_backend(path: str | Path) -> Backend:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return TFLiteBackend(path)
    if suffix == ".onnx":
        return OnnxBackend(path)
    raise PoseModelError(f"{path}: unknown model suffix {suffix!r} — expected .tflite or .onnx")


def detect_kind(backend: Backend) -> str:
    """Which of KINDS the backend's signature is (see the module docstring)."""
    shape, outputs = backend.input.shape, backend.outputs
    shapes = [o.shape for o in outputs]
    if len(shape) == 4 and shape[3] == 3 and len(outputs) == 1:
        if len(shapes[0]) == 4 and shapes[0][2:] == (MOVENET_NUM_KEYPOINTS, 3):
            return "movenet_singlepose"
        if len(shapes[0]) == 3 and shapes[0][2] == MOVENET_MULTIPOSE_VALUES:
            return "movenet_multipose"
    if len(shape) == 4 and shape[1] == 3 and len(outputs) == 2:
        names = {o.name for o in outputs}
        if {"simcc_x", "simcc_y"} <= names or all(len(s) == 3 for s in shapes):
            return "rtmpose"
        if {"dets", "keypoints"} <= names or sorted(len(s) for s in shapes) == [3, 4]:
            return "rtmo"
    raise PoseModelError(f"{backend.path}: input {shape} and outputs {[(o.name, o.shape) for o in outputs]} match "
                         "no supported pose model — expected MoveNet SinglePose ([1, H, W, 3] -> [1, 1, 17, 3]), "
                         "MoveNet MultiPose (-> [1, 6, 56]), RTMPose ([N, 3, H, W] -> simcc_x, simcc_y) or RTMO "
                         "(-> dets [1, N, 5], keypoints [1, N, K, 3]); pass kind=")


# --------------------------------------------------------------------------------------------------------------------
# Geometry: image -> model input as a 2x3 affine (pixel centres), and back

def letterbox_affine(image_hw: tuple[int, int], input_hw: tuple[int, int],
                     centred: bool = True) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """The affine `[2, 3]` (image px -> input px) of resizing the image to fit `input_hw` with its aspect ratio kept
    (sides rounded down, as tf.image.resize_with_pad) and padding the rest, centred or at the bottom/right; the
    resized (H, W) and the offset (top, left) of the resized image. cv2.resize maps pixel centres
    x -> s (x + 0.5) - 0.5."""
    (height, width), (in_h, in_w) = image_hw, input_hw
    ratio = min(in_h / height, in_w / width)
    new_h, new_w = max(1, int(math.floor(height * ratio))), max(1, int(math.floor(width * ratio)))
    off_y, off_x = ((in_h - new_h) // 2, (in_w - new_w) // 2) if centred else (0, 0)
    sx, sy = new_w / width, new_h / height
    affine = np.array([[sx, 0.0, 0.5 * sx - 0.5 + off_x], [0.0, sy, 0.5 * sy - 0.5 + off_y]])
    return affine, (new_h, new_w), (off_y, off_x)


def letterbox(image: np.ndarray, input_hw: tuple[int, int], pad_value: float = 0.0,
              centred: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """`image [H, W, C]` resized into `input_hw` (area interpolation) and padded: (canvas, affine image -> input)."""
    affine, (new_h, new_w), (off_y, off_x) = letterbox_affine(image.shape[:2], input_hw, centred)
    canvas = np.full((*input_hw, image.shape[2]), pad_value, image.dtype)
    canvas[off_y:off_y + new_h, off_x:off_x + new_w] = cv2.resize(image, (new_w, new_h),
                                                                  interpolation=cv2.INTER_AREA)
    return canvas, affine


def box_affine(box, input_hw: tuple[int, int], padding: float = TOP_DOWN_BOX_PADDING) -> np.ndarray:
    """mmpose's top-down crop as an affine `[2, 3]` (image px -> input px): the box (x0, y0, x1, y1) enlarged by
    `padding`, widened or heightened to the input's aspect ratio, its centre on the input's centre (W/2, H/2)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    in_h, in_w = input_hw
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    width, height = (x1 - x0) * padding, (y1 - y0) * padding
    aspect = in_w / in_h
    width = max(width, height * aspect)
    if width <= 0:
        raise ValueError(f"box {box}: empty — expected x1 > x0 or y1 > y0")
    zoom = in_w / width
    return np.array([[zoom, 0.0, in_w / 2 - zoom * centre[0]], [0.0, zoom, in_h / 2 - zoom * centre[1]]])


def to_image(points, affine: np.ndarray) -> np.ndarray:
    """Input px `[..., 2]` -> image px through the inverse of `affine` (image -> input)."""
    points = np.asarray(points, np.float64)
    linear, shift = affine[:, :2], affine[:, 2]
    return (points - shift) @ np.linalg.inv(linear).T


def _boxes_to_image(boxes_xyxy: np.ndarray, affine: np.ndarray) -> np.ndarray:
    corners = to_image(np.asarray(boxes_xyxy, np.float64).reshape(-1, 2, 2), affine)
    return corners.reshape(-1, 4)


# --------------------------------------------------------------------------------------------------------------------
# Decoders (numpy, from the raw outputs)

def decode_movenet_singlepose(output: np.ndarray, input_hw: tuple[int, int], affine: np.ndarray) -> np.ndarray:
    """[1, 1, 17, 3] (y, x, score) normalised -> keypoints [1, 17, 3] (x px, y px, score) in the image."""
    values = np.asarray(output, np.float64).reshape(MOVENET_NUM_KEYPOINTS, 3)
    points = values[:, [1, 0]] * np.array([input_hw[1], input_hw[0]])
    return np.concatenate([to_image(points, affine), values[:, 2:]], axis=1)[None].astype(np.float32)


def decode_movenet_multipose(output: np.ndarray, input_hw: tuple[int, int], affine: np.ndarray,
                             min_person_score: float = MOVENET_MIN_PERSON_SCORE):
    """[1, 6, 56] -> keypoints [P, 17, 3] (x px, y px, score), boxes [P, 4] (x0, y0, x1, y1) px, scores [P] of the
    people whose score >= `min_person_score`."""
    values = np.asarray(output, np.float64).reshape(-1, MOVENET_MULTIPOSE_VALUES)
    values = values[values[:, -1] >= min_person_score]
    size_xy = np.array([input_hw[1], input_hw[0]])
    keypoints = values[:, :3 * MOVENET_NUM_KEYPOINTS].reshape(-1, MOVENET_NUM_KEYPOINTS, 3)
    points = to_image(keypoints[..., [1, 0]] * size_xy, affine)
    box = values[:, 51:55]  # ymin, xmin, ymax, xmax
    boxes = _boxes_to_image(np.stack([box[:, 1], box[:, 0], box[:, 3], box[:, 2]], axis=1).reshape(-1, 2, 2)
                            * size_xy, affine)
    return (np.concatenate([points, keypoints[..., 2:]], axis=-1).astype(np.float32), boxes.astype(np.float32),
            values[:, -1].astype(np.float32))


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray,
                 split_ratio: float = SIMCC_SPLIT_RATIO) -> tuple[np.ndarray, np.ndarray]:
    """SimCC `[N, K, Wx]`, `[N, K, Wy]` -> input pixels `[N, K, 2]` (argmax / split ratio) and confidences `[N, K]`
    (the smaller of the two maxima, as mmpose's get_simcc_maximum; 0 where that is <= 0, with the point at 0)."""
    simcc_x, simcc_y = np.asarray(simcc_x, np.float64), np.asarray(simcc_y, np.float64)
    points = np.stack([simcc_x.argmax(-1), simcc_y.argmax(-1)], axis=-1) / split_ratio
    confidence = np.minimum(simcc_x.max(-1), simcc_y.max(-1))
    points[confidence <= 0] = 0.0
    return points, np.maximum(confidence, 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first."""
    order, keep = list(np.argsort(-scores)), []
    while order:
        best = order.pop(0)
        keep.append(best)
        order = [i for i in order if box_iou(boxes[best], boxes[i]) <= iou]
    return np.array(keep, np.int64)


def box_iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(width, 0.0) * max(height, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def decode_rtmo(dets: np.ndarray, keypoints: np.ndarray, affine: np.ndarray,
                min_person_score: float = RTMO_MIN_PERSON_SCORE, nms_iou: float = RTMO_NMS_IOU):
    """`dets [1, N, 5]`, `keypoints [1, N, K, 3]` in input px -> keypoints [P, K, 3], boxes [P, 4] px and scores [P]
    in the image, for people with score >= `min_person_score` after NMS."""
    dets = np.asarray(dets, np.float64).reshape(-1, 5)
    keypoints = np.asarray(keypoints, np.float64)
    keypoints = keypoints.reshape(dets.shape[0], -1, 3)
    boxes = _boxes_to_image(dets[:, :4], affine)
    keep = np.flatnonzero(dets[:, 4] >= min_person_score)
    keep = keep[nms(boxes[keep], dets[keep, 4], nms_iou)] if keep.size else keep
    points = to_image(keypoints[keep, :, :2], affine)
    return (np.concatenate([points, keypoints[keep, :, 2:]], axis=-1).astype(np.float32),
            boxes[keep].astype(np.float32), dets[keep, 4].astype(np.float32))


# --------------------------------------------------------------------------------------------------------------------
# Models

@dataclasses.dataclass
class Detections:
    keypoints: np.ndarray  # [P, K, 3] float32 (x px, y px, confidence) in the image
    boxes: np.ndarray      # [P, 4] float32 (x0, y0, x1, y1) px; NaN where the model gives none
    scores: np.ndarray     # [P] float32


class PoseModel:
    """A loaded model file: `model(image_rgb [H, W, 3] uint8, boxes [B, 4] or None) -> Detections`.

    `boxes` are person boxes (x0, y0, x1, y1) px for the top-down models (RTMPose; MoveNet SinglePose crops each
    box); None runs them on the whole frame. The one-stage models (MoveNet MultiPose, RTMO) ignore boxes.
    """

    def __init__(self, path: str | Path, kind: str | None = None, layout: str | None = None,
                 min_person_score: float | None = None, nms_iou: float = RTMO_NMS_IOU,
                 box_padding: float = TOP_DOWN_BOX_PADDING):
        self.backend = load_backend(path)
        self.kind = kind or detect_kind(self.backend)
        if self.kind not in KINDS:
            raise ValueError(f"{path}: kind {self.kind!r} is not one of {KINDS}")
        self.min_person_score = min_person_score
        self.nms_iou, self.box_padding = nms_iou, box_padding
        num_keypoints = MOVENET_NUM_KEYPOINTS if self.kind.startswith("movenet") else self._num_keypoints()
        self.layout = keypoint_sources.layout_of(num_keypoints, str(path), layout)
        self.joint_names = joints.JOINT_SETS[self.layout]

    @property
    def path(self) -> Path:
        return self.backend.path

    def _num_keypoints(self) -> int:
        if self.kind == "rtmo":
            shape = next(o.shape for o in self.backend.outputs if len(o.shape) == 4)
            return shape[2]
        return self.backend.outputs[0].shape[1]

    def _input_hw(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        shape = self.backend.input.shape
        height, width = (shape[1], shape[2]) if self.kind.startswith("movenet") else (shape[2], shape[3])
        if height is not None and width is not None:
            return height, width
        if self.kind != "movenet_multipose":
            raise PoseModelError(f"{self.path}: input {shape} has no fixed size — expected one for {self.kind}")
        ratio = MOVENET_MULTIPOSE_LONG_SIDE / max(image_hw)
        stride = MOVENET_MULTIPOSE_STRIDE
        return tuple(int(math.ceil(d * ratio / stride) * stride) for d in image_hw)

    def __call__(self, image: np.ndarray, boxes=None) -> Detections:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{self.path}: image has shape {image.shape} — expected [H, W, 3] RGB")
        input_hw = self._input_hw(image.shape[:2])
        if self.kind == "movenet_multipose":
            canvas, affine = letterbox(image, input_hw)
            (output,) = self.backend.run(canvas[None])
            score = MOVENET_MIN_PERSON_SCORE if self.min_person_score is None else self.min_person_score
            return Detections(*decode_movenet_multipose(output, input_hw, affine, score))
        if self.kind == "rtmo":
            canvas, affine = letterbox(image[..., ::-1].astype(np.float32), input_hw, RTMO_PAD_VALUE)
            outputs = self.backend.run(np.ascontiguousarray(canvas.transpose(2, 0, 1)[None]))
            dets, keypoints = sorted(outputs, key=np.ndim)  # dets [1, N, 5], keypoints [1, N, K, 3]
            score = RTMO_MIN_PERSON_SCORE if self.min_person_score is None else self.min_person_score
            return Detections(*decode_rtmo(dets, keypoints, affine, score, self.nms_iou))
        boxes = None if boxes is None else np.asarray(boxes, np.float64).reshape(-1, 4)
        if self.kind == "movenet_singlepose" and boxes is None:
            canvas, affine = letterbox(image, input_hw)
            (output,) = self.backend.run(canvas[None])
            keypoints = decode_movenet_singlepose(output, input_hw, affine)
            return Detections(keypoints, np.full((1, 4), np.nan, np.float32), keypoints[..., 2].mean(-1))
        if boxes is None:
            boxes = np.array([[0.0, 0.0, image.shape[1], image.shape[0]]])
        return self._top_down(image, boxes, input_hw)

    def _top_down(self, image: np.ndarray, boxes: np.ndarray, input_hw: tuple[int, int]) -> Detections:
        keypoints = []
        for box in boxes:
            affine = box_affine(box, input_hw, self.box_padding)
            crop = cv2.warpAffine(image, affine, (input_hw[1], input_hw[0]), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
            if self.kind == "movenet_singlepose":
                (output,) = self.backend.run(crop[None])
                keypoints.append(decode_movenet_singlepose(output, input_hw, affine)[0])
                continue
            normalised = (crop.astype(np.float32) - np.float32(IMAGENET_MEAN_RGB)) / np.float32(IMAGENET_STD_RGB)
            outputs = dict(zip([o.name for o in self.backend.outputs],
                               self.backend.run(np.ascontiguousarray(normalised.transpose(2, 0, 1)[None]))))
            simcc_x, simcc_y = self._simcc(outputs, input_hw)
            points, confidence = decode_simcc(simcc_x, simcc_y)
            keypoints.append(np.concatenate([to_image(points[0], affine), confidence[0, :, None]], axis=-1))
        keypoints = np.asarray(keypoints, np.float32).reshape(len(boxes), len(self.joint_names), 3)
        return Detections(keypoints, boxes.astype(np.float32), keypoints[..., 2].mean(-1))

    def _simcc(self, outputs: dict, input_hw: tuple[int, int]):
        if {"simcc_x", "simcc_y"} <= set(outputs):
            return outputs["simcc_x"], outputs["simcc_y"]
        first, second = outputs.values()  # unnamed: simcc_x has split ratio x the input width bins
        return (first, second) if first.shape[-1] == SIMCC_SPLIT_RATIO * input_hw[1] else (second, first)


def load_model(path: str | Path, **options) -> PoseModel:
    """A `PoseModel` for a `.tflite` / `.onnx` file (options: kind, layout, min_person_score, nms_iou,
    box_padding)."""
    return PoseModel(path, **options)


def read_rgb(path: str | Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"{path}: missing or not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def run_model(model: PoseModel, frames: Sequence, boxes=None) -> keypoint_sources.KeypointSequence:
    """Run `model` on every frame (image paths or RGB arrays, frame t at index t): a `KeypointSequence` in the
    model's layout. `boxes`: per frame `[B, 4]` person boxes (or None) for top-down models, or a `KeypointSequence`
    whose boxes to use (e.g. an RTMO or MoveNet MultiPose pass)."""
    if isinstance(boxes, keypoint_sources.KeypointSequence):
        by_frame = {f.frame: f.boxes[~np.isnan(f.boxes).any(axis=1)] for f in boxes}
        boxes = [by_frame.get(t) for t in range(len(frames))]
    out, image_size = [], None
    for t, frame in enumerate(frames):
        image = read_rgb(frame) if isinstance(frame, (str, Path)) else np.asarray(frame)
        image_size = image_size or tuple(image.shape[:2])
        frame_boxes = None if boxes is None else boxes[t]
        if frame_boxes is not None and len(frame_boxes) == 0:
            out.append(keypoint_sources.empty_frame(t, len(model.joint_names)))
            continue
        found = model(image, frame_boxes)
        out.append(keypoint_sources.make_frame(t, found.keypoints, found.boxes, found.scores))
    return keypoint_sources.KeypointSequence(source=str(model.path), layout=model.layout,
                                             joint_names=model.joint_names, frames=out, image_size=image_size)
