"""Pose model files as a keypoint source: tiny models with MoveNet's, RTMPose's and RTMO's real signatures (TFLite
converted from a tf.function; ONNX graphs written with onnx's helper API), run through the real loading code, and the
decoded keypoints compared with values worked out by hand here, letterbox and crop mappings included."""
import numpy as np
import pytest

from mhr_tf.data import keypoint_models as km
from mhr_tf.data import keypoint_sources

onnx = pytest.importorskip("onnx", reason="the ONNX tests need the 'onnx' extra (pip install 'mhr_tf[onnx]')")
pytest.importorskip("onnxruntime", reason="the ONNX tests need the 'onnx' extra (pip install 'mhr_tf[onnx]')")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


# --------------------------------------------------------------------------------------------------------------------
# Tiny models

def tflite_model(path, fn, input_spec):
    import tensorflow as tf
    function = tf.function(fn, input_signature=[input_spec], autograph=False)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
    path.write_bytes(converter.convert())
    return path


def movenet_brightest_pixel(path, dtype, size=192):
    """MoveNet SinglePose's signature: [1, S, S, 3] -> [1, 1, 17, 3]; every keypoint at the brightest input pixel
    (y, x normalised: row / S, column / S), score 0.75."""
    import tensorflow as tf

    def fn(image):
        brightness = tf.reshape(tf.reduce_sum(tf.cast(image, tf.float32), axis=-1), [1, -1])
        index = tf.argmax(brightness, axis=-1, output_type=tf.int32)
        row, column = tf.cast(index // size, tf.float32), tf.cast(index % size, tf.float32)
        point = tf.stack([row / size, column / size, tf.fill([1], 0.75)], axis=-1)
        return tf.tile(tf.reshape(point, [1, 1, 1, 3]), [1, 1, 17, 1])

    return tflite_model(path, fn, tf.TensorSpec([1, size, size, 3], dtype))


MULTIPOSE = np.zeros((1, 6, 56), np.float32)
MULTIPOSE[0, 0, :51] = np.tile([0.25, 0.5, 0.9], 17)      # person 0: every keypoint at y 0.25, x 0.5
MULTIPOSE[0, 0, 51:56] = [0.1, 0.2, 0.9, 0.6, 0.8]        # box ymin, xmin, ymax, xmax; score 0.8
MULTIPOSE[0, 1, 51:56] = [0.0, 0.0, 1.0, 1.0, 0.1]        # person 1: score 0.1, below the threshold


def movenet_multipose(path):
    """MoveNet MultiPose's signature with a dynamic input [1, None, None, 3] int32 -> [1, 6, 56]: MULTIPOSE, except
    that keypoint 0's score is input height / 1000 and keypoint 1's input width / 1000."""
    import tensorflow as tf

    def fn(image):
        shape = tf.cast(tf.shape(image), tf.float32)
        extra = tf.scatter_nd([[0, 0, 2], [0, 0, 5]], tf.stack([shape[1], shape[2]]) / 1000.0 - 0.9, [1, 6, 56])
        return tf.constant(MULTIPOSE) + extra + 0.0 * tf.reduce_mean(tf.cast(image, tf.float32))

    return tflite_model(path, fn, tf.TensorSpec([1, None, None, 3], tf.int32))


def save_onnx(path, nodes, inputs, outputs, initializers):
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def rtmpose_profile(path, num_keypoints=17, height=256, width=192):
    """RTMPose's signature: input [1, 3, 256, 192] -> simcc_x [1, K, 384], simcc_y [1, K, 512]. simcc_x is the
    column profile of the input (max over channels and rows), each value repeated twice (split ratio 2); simcc_y the
    row profile. So the argmax lands on the brightest input pixel."""
    def profile(name, axes, length):
        return [helper.make_node("ReduceMax", ["input"], [f"{name}_max"], axes=axes, keepdims=0),  # [1, L]
                helper.make_node("Unsqueeze", [f"{name}_max", "last"], [f"{name}_col"]),           # [1, L, 1]
                helper.make_node("Concat", [f"{name}_col", f"{name}_col"], [f"{name}_pair"], axis=2),
                helper.make_node("Reshape", [f"{name}_pair", f"{name}_shape"], [f"{name}_flat"]),  # [1, 1, 2L]
                helper.make_node("Expand", [f"{name}_flat", f"{name}_expand"], [name])]            # [1, K, 2L]

    initializers = [numpy_helper.from_array(np.array([2], np.int64), "last")]
    for name, length in (("simcc_x", width), ("simcc_y", height)):
        initializers += [numpy_helper.from_array(np.array([1, 1, 2 * length], np.int64), f"{name}_shape"),
                         numpy_helper.from_array(np.array([1, num_keypoints, 2 * length], np.int64),
                                                 f"{name}_expand")]
    nodes = profile("simcc_x", [1, 2], width) + profile("simcc_y", [1, 3], height)
    return save_onnx(
        path, nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [1, num_keypoints, 2 * width]),
         helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [1, num_keypoints, 2 * height])],
        initializers)


RTMO_DETS = np.array([[[100, 180, 300, 580, 0.9],    # A
                       [102, 182, 302, 582, 0.8],    # B: overlaps A (IoU 0.98), removed by NMS
                       [400, 100, 500, 300, 0.3],    # C: below the score threshold
                       [500, 200, 600, 400, 0.7]]],  # D
                     np.float32)
RTMO_KEYPOINTS = np.zeros((1, 4, 17, 3), np.float32)
RTMO_KEYPOINTS[0, 0, :, 0] = 150 + np.arange(17)
RTMO_KEYPOINTS[0, 0, :, 1] = 300
RTMO_KEYPOINTS[0, 0, :, 2] = 0.95
RTMO_KEYPOINTS[0, 3, :, :2] = [550, 300]


def rtmo_constant(path):
    """RTMO's signature: input [1, 3, 640, 640] -> dets [1, 4, 5], keypoints [1, 4, 17, 3] = RTMO_DETS and
    RTMO_KEYPOINTS, except person 3's keypoint 0 score = the mean of input channel 0 / 1000."""
    one_hot = np.zeros((1, 4, 17, 3), np.float32)
    one_hot[0, 3, 0, 2] = 1.0
    nodes = [helper.make_node("Identity", ["dets_value"], ["dets"]),
             helper.make_node("Gather", ["input", "zero"], ["channel0"], axis=1),
             helper.make_node("ReduceMean", ["channel0"], ["mean0"], keepdims=0),
             helper.make_node("Mul", ["mean0", "milli"], ["scaled"]),
             helper.make_node("Mul", ["scaled", "one_hot"], ["extra"]),
             helper.make_node("Add", ["keypoints_value", "extra"], ["keypoints"])]
    initializers = [numpy_helper.from_array(RTMO_DETS, "dets_value"),
                    numpy_helper.from_array(RTMO_KEYPOINTS, "keypoints_value"),
                    numpy_helper.from_array(np.array(0, np.int64), "zero"),
                    numpy_helper.from_array(np.array(0.001, np.float32), "milli"),
                    numpy_helper.from_array(one_hot, "one_hot")]
    return save_onnx(path, nodes, [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 640, 640])],
                     [helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, 4, 5]),
                      helper.make_tensor_value_info("keypoints", TensorProto.FLOAT, [1, 4, 17, 3])],
                     initializers)


# --------------------------------------------------------------------------------------------------------------------
# Geometry by hand

def test_letterbox_affine_by_hand():
    # 384 x 256 (W x H) into 192 x 192: ratio 0.5, resized 192 x 128, 32 rows of padding above. cv2.resize maps pixel
    # centres x -> 0.5 (x + 0.5) - 0.5 = 0.5 x - 0.25.
    affine, resized, offset = km.letterbox_affine((256, 384), (192, 192))
    np.testing.assert_allclose(affine, [[0.5, 0.0, -0.25], [0.0, 0.5, 31.75]])
    assert resized == (128, 192) and offset == (32, 0)
    np.testing.assert_allclose(km.to_image([[49.75, 61.75]], affine), [[100.0, 60.0]])


def test_top_down_box_affine_by_hand():
    # Box 96 x 256 px, x 1.25 -> 120 x 320; widened to the input's 192/256 = 0.75 aspect: 240 x 320. Zoom 192/240 =
    # 0.8; the box centre (148, 178) goes to the input centre (96, 128).
    affine = km.box_affine((100, 50, 196, 306), (256, 192))
    np.testing.assert_allclose(affine, [[0.8, 0.0, 96 - 0.8 * 148], [0.0, 0.8, 128 - 0.8 * 178]])


def test_simcc_decoding_takes_the_smaller_maximum_and_halves_the_bin():
    simcc_x = np.zeros((1, 2, 8))
    simcc_y = np.zeros((1, 2, 6))
    simcc_x[0, 0, 5], simcc_y[0, 0, 3] = 0.9, 0.6  # keypoint 0: bin 5 -> 2.5 px, bin 3 -> 1.5 px
    simcc_x[0, 1, 2], simcc_y[0, 1, 1] = -0.2, -0.1  # keypoint 1: no positive response
    points, confidence = km.decode_simcc(simcc_x, simcc_y)
    np.testing.assert_allclose(points[0], [[2.5, 1.5], [0.0, 0.0]])
    np.testing.assert_allclose(confidence[0], [0.6, 0.0])


# --------------------------------------------------------------------------------------------------------------------
# Models through the loading code

@pytest.mark.parametrize("dtype_name", ["uint8", "int32", "float32"])
def test_movenet_singlepose_finds_a_dot_through_the_letterbox(tmp_path, dtype_name):
    import tensorflow as tf
    path = movenet_brightest_pixel(tmp_path / "movenet.tflite", getattr(tf, dtype_name))
    model = km.load_model(path)
    assert model.kind == "movenet_singlepose" and model.layout == "coco_17"
    image = np.zeros((256, 384, 3), np.uint8)
    image[60:62, 100:102] = 255  # a 2 x 2 dot: area resizing by 0.5 makes it input pixel (50, 30 + 32)
    found = model(image)
    # Input (50, 62) back to the image: x = (50 + 0.25) / 0.5, y = (62 - 31.75) / 0.5: the dot's centre.
    np.testing.assert_allclose(found.keypoints[0, :, :2], np.tile([100.5, 60.5], (17, 1)), atol=1e-4)
    np.testing.assert_allclose(found.keypoints[0, :, 2], 0.75)


def test_movenet_singlepose_on_a_box_crops_it(tmp_path):
    import tensorflow as tf
    model = km.load_model(movenet_brightest_pixel(tmp_path / "movenet.tflite", tf.uint8))
    image = np.zeros((300, 400, 3), np.uint8)
    image[120, 210] = 255
    # Box 100 x 100 centred at (200, 150), x 1.25 = 125 px into 192: zoom 1.536; the dot lands at input
    # (96 + 1.536 * 10, 96 - 1.536 * 30) = (111.36, 49.92); the brightest input pixel is the nearest, (111, 50).
    found = model(image, boxes=[[150, 100, 250, 200]])
    zoom = 192 / 125
    np.testing.assert_allclose(found.keypoints[0, 0, :2], [200 + (111 - 96) / zoom, 150 + (50 - 96) / zoom],
                               atol=1e-4)


def test_movenet_multipose_dynamic_input_and_box_mapping(tmp_path):
    model = km.load_model(movenet_multipose(tmp_path / "multipose.tflite"))
    assert model.kind == "movenet_multipose"
    found = model(np.zeros((240, 320, 3), np.uint8))
    # 320 x 240: the larger side to 256 -> 256 x 192, multiples of 32; no padding; x_in = 0.8 x - 0.1.
    assert found.keypoints.shape == (1, 17, 3)
    np.testing.assert_allclose(found.keypoints[0, 2:, :2], np.tile([(128 + 0.1) / 0.8, (48 + 0.1) / 0.8], (15, 1)),
                               rtol=1e-5)
    np.testing.assert_allclose(found.keypoints[0, :2, 2], [0.192, 0.256], rtol=1e-5)  # the model saw 192 x 256
    np.testing.assert_allclose(found.boxes[0], [(0.2 * 256 + 0.1) / 0.8, (0.1 * 192 + 0.1) / 0.8,
                                                (0.6 * 256 + 0.1) / 0.8, (0.9 * 192 + 0.1) / 0.8], rtol=1e-5)
    np.testing.assert_allclose(found.scores, [0.8])


def test_rtmpose_finds_a_dot_through_the_box_crop(tmp_path):
    model = km.load_model(rtmpose_profile(tmp_path / "rtmpose.onnx"))
    assert model.kind == "rtmpose" and model.layout == "coco_17"
    image = np.zeros((150, 200, 3), np.uint8)
    image[45, 70] = 255
    found = model(image, boxes=[[40, 20, 88, 84]])
    # Box 48 x 64, x 1.25 = 60 x 80, already 0.75 wide: zoom 192 / 60 = 3.2, x_in = 3.2 x - 108.8, y_in = 3.2 y
    # - 38.4. The dot goes to (115.2, 105.6); bilinear weights: column 115 (src 69.94, 15/16) beats 116 (3/4), row
    # 106 (src 45.125, 7/8) beats 105 (13/16). Back: x = (115 + 108.8) / 3.2, y = (106 + 38.4) / 3.2.
    np.testing.assert_allclose(found.keypoints[0, :, :2], np.tile([69.9375, 45.125], (17, 1)), atol=1e-6)
    # Confidence: the smaller maximum, the row profile's: 255 * 15/16 * 7/8 = 209.2 -> 209 in uint8, normalised by
    # the channel that makes it largest (blue: mean 103.53, std 57.375).
    np.testing.assert_allclose(found.keypoints[0, :, 2], (209 - 103.53) / 57.375, atol=0.02)
    np.testing.assert_allclose(found.boxes, [[40, 20, 88, 84]])


def test_rtmo_letterbox_nms_threshold_and_bgr_input(tmp_path):
    model = km.load_model(rtmo_constant(tmp_path / "rtmo.onnx"))
    assert model.kind == "rtmo"
    image = np.zeros((960, 1280, 3), np.uint8)
    image[...] = (10, 20, 200)  # RGB; the model reads BGR, so its channel 0 is 200
    found = model(image)
    # 1280 x 960 into 640 x 640: ratio 0.5, resized 640 x 480, 80 rows of padding above: x_in = 0.5 x - 0.25,
    # y_in = 0.5 y + 79.75. A and D remain (B suppressed, C below 0.5).
    np.testing.assert_allclose(found.scores, [0.9, 0.7])
    np.testing.assert_allclose(found.boxes[0], [200.5, 200.5, 600.5, 1000.5])
    np.testing.assert_allclose(found.keypoints[0, :, 0], 300.5 + 2 * np.arange(17))
    np.testing.assert_allclose(found.keypoints[0, :, 1], 440.5)
    # Channel 0's mean over the input: 480 rows of 200 and 160 rows of padding 114 -> 178.5.
    np.testing.assert_allclose(found.keypoints[1, 0, 2], 0.1785, atol=1e-5)


def test_run_model_gives_a_keypoint_sequence_over_frames(tmp_path):
    import cv2
    import tensorflow as tf
    model = km.load_model(movenet_brightest_pixel(tmp_path / "movenet.tflite", tf.uint8))
    frames = []
    for t, column in enumerate((100, 140)):
        image = np.zeros((256, 384, 3), np.uint8)
        image[60:62, column:column + 2] = 255
        frames.append(str(tmp_path / f"image_{t:05d}.png"))
        cv2.imwrite(frames[-1], image)
    sequence = keypoint_sources.open_keypoints(tmp_path / "movenet.tflite", frames=frames)
    assert sequence.layout == "coco_17" and sequence.frame_numbers.tolist() == [0, 1]
    assert sequence.image_size == (256, 384)
    np.testing.assert_allclose([f.keypoints[0, 0, 0] for f in sequence], [100.5, 140.5], atol=1e-4)
    coco18 = keypoint_sources.to_coco18(sequence).frames[0].keypoints[0]
    np.testing.assert_allclose(coco18[1], [100.5, 60.5, 0.75], atol=1e-4)  # neck from the shoulders


def test_unknown_signature_and_missing_onnxruntime_are_named(tmp_path, monkeypatch):
    import sys
    import tensorflow as tf
    path = tflite_model(tmp_path / "other.tflite", lambda x: x * 2.0, tf.TensorSpec([1, 4], tf.float32))
    with pytest.raises(km.PoseModelError, match="other.tflite.*match"):
        km.load_model(path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"mhr_tf\[onnx\]"):
        km.load_model(rtmo_constant(tmp_path / "rtmo.onnx"))
