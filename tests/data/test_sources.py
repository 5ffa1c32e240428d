"""The two sources of the one pipeline, on the same simulator data: the Python decoders of the files, and the TFDS
records built from those files. They draw from the same distribution, give the same example for the same records
and choices, and the TFDS one runs without Python."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from mhr_tf import datasets
from mhr_tf.data import background_windows, pipeline, sources
from mhr_tf.data.preprocessing import Channels, Preprocessing
from tests.helpers import background_windows_for

FRAMES, CROP = 6, 32
PRE = Preprocessing(num_frames=FRAMES, crop_size=CROP, channels=Channels(True, True, True))
DEPTH_TOLERANCE_M = 0.5e-3  # TFDS stores depth as uint16 millimetres: the one difference by design here


@pytest.fixture(scope="module")
def both(sim_data, tmp_path_factory):
    """A FileSource over the simulator's files and a TFDSSource over TFDS records built from them (lossless PNG
    backgrounds, the same SLIC settings as the file caches)."""
    background_windows_for(sim_data["backgrounds"], FRAMES)
    manual = tmp_path_factory.mktemp("manual")
    (manual / "sim_surreal").symlink_to(sim_data["surreal"], target_is_directory=True)
    (manual / "sim_backgrounds").symlink_to(sim_data["backgrounds"], target_is_directory=True)
    data_dir = tmp_path_factory.mktemp("tfds")
    datasets.build("surreal_clips/sim_clips", data_dir, manual, use_beam=False)
    datasets.build("background_clips/sim_t8", data_dir, manual, use_beam=False, config_overrides={
        "num_frames": str(FRAMES), "frames_encoding": "png", "slic_downsample": "2", "flow_method": "dis", "flow_scale": "1.0"})
    return (sources.FileSource(sim_data["surreal"], sim_data["backgrounds"], FRAMES),
            sources.TFDSSource(data_dir, FRAMES, shuffle_buffer=64))


def _choices(source, count: int) -> list[tuple]:
    ds = pipeline.make_dataset(source, dataclasses.replace(PRE, channels=Channels(False, False, True)), 16, seed=0,
                               num_examples=count, with_meta=True)
    out = []
    for _, labels in ds:
        meta = {k: labels[k].numpy() for k in pipeline.META}
        out += [(meta["clip"][i], int(meta["start"][i]), meta["video"][i], int(meta["video_start"][i]),
                 tuple(meta["crop"][i])) for i in range(len(meta["clip"]))]
    return out


def test_both_sources_draw_every_clip_start_and_background_frame_alike(both):
    """The same set of (clip, start) and (video, first frame) choices over many examples — every T-frame clip of every
    SURREAL clip and of every background video — and crops spread over the same range of every video, on both
    sources."""
    files, records = (_choices(source, 320) for source in both)
    assert {c[:2] for c in files} == {c[:2] for c in records}
    assert {c[2:4] for c in files} == {c[2:4] for c in records}
    clips = {str(e.path.relative_to(both[0].surreal_root)).encode(): e.frames for e in both[0].clips}
    assert {c[:2] for c in files} == {(clip, s) for clip, n in clips.items() for s in range(n - FRAMES + 1)}
    for cache, _ in both[0].windows:
        video = background_windows.video_key(cache.video).encode()
        room = np.array(cache.resized_hw) - sources.IMAGE_HW  # the crop offsets that fit
        for choices in (files, records):
            crops = np.array([c[4] for c in choices if c[2] == video])
            assert (crops >= 0).all() and (crops <= room).all()
            assert (crops.max(axis=0) >= 0.8 * room).all() and (crops.min(axis=0) <= 0.2 * room).all(), video


def test_same_records_and_choices_give_the_same_example(both):
    files, records = both
    person, scene = next(iter(records.pairs(tf.constant(0, tf.int64))))
    key = sources.example_key(0, 17)
    from_records = records.raw(key, (person, scene))
    # The file source told to read exactly what the records' draw chose.
    clip = [str(e.path.relative_to(files.surreal_root)).encode() for e in files.clips].index(
        person["clip"].numpy())
    window = [(background_windows.video_key(c.video).encode(), int(c.starts[k])) for c, k in files.windows].index(
        (scene["video"].numpy(), int(scene["start"])))
    offset = int(from_records["video_start"]) - int(scene["start"])
    spec = [name for name in sources.raw_spec(FRAMES) if name != "crop"]
    from_files = dict(zip(spec, files.decode(clip, int(from_records["start"]), window, offset)))
    from_files["crop"] = from_records["crop"].numpy()
    for name, value in from_files.items():
        if name == "person_rgb":  # the records keep only the person's pixels, the only ones composited
            value = np.where(from_files["segm"][..., None] > 0, value, 0)
        if name == "depth":
            np.testing.assert_allclose(from_records[name], value, atol=DEPTH_TOLERANCE_M, err_msg=name)
        else:
            np.testing.assert_array_equal(from_records[name], value, err_msg=name)
    a = pipeline.process(from_records, key, PRE)
    b = pipeline.process({k: tf.constant(v) for k, v in from_files.items()}, key, PRE)
    for name in ("inputs", "box_centre", "box_size", "keypoints_visible", "occluded", "occluder"):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _graph_ops(ds: tf.data.Dataset) -> set[str]:
    graph = tf.compat.v1.GraphDef.FromString(ds._as_serialized_graph().numpy())
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops |= {node.op for node in function.node_def}
    return ops


def test_tfds_source_graph_holds_no_python_and_the_file_source_one_does(both):
    pre = dataclasses.replace(PRE, flow=dataclasses.replace(PRE.flow, backend="tf_tvl1"))
    files, records = (pipeline.make_dataset(source, pre, 1) for source in both)
    python_ops = {"PyFunc", "EagerPyFunc", "PyFuncStateless"}
    assert not _graph_ops(records) & python_ops
    assert _graph_ops(files) & python_ops


def test_service_refuses_a_graph_with_python_steps_naming_them(both):
    files, records = both
    with pytest.raises(ValueError, match="the source .Python decoders."):
        pipeline.make_dataset(files, dataclasses.replace(PRE, channels=Channels(False, False, True)), 1,
                              data_service="grpc://127.0.0.1:1")
    with pytest.raises(ValueError, match="flow backend 'dis'"):
        pipeline.make_dataset(records, PRE, 1, data_service="grpc://127.0.0.1:1")


def test_depth_in_one_xla_pass_is_the_graphs_depth():
    depth_mm = np.random.default_rng(0).integers(0, 65536, (3, 8, 10)).astype(np.uint16)
    depth_mm[0, 0, :4] = sources.DEPTH_MM_BACKGROUND
    fused = sources._depth_metres_xla(depth_mm).numpy()
    np.testing.assert_array_equal(fused, tf.function(sources.depth_metres)(depth_mm).numpy())
    reference = np.where(depth_mm == 65535, 1e10, depth_mm.astype(np.float64) / 1000.0)  # float64
    np.testing.assert_allclose(fused, reference, rtol=3e-7)  # float32: two roundings (1/1000, the product)


@pytest.mark.slow
def test_service_worker_with_tf_tvl1_sends_the_examples_the_local_graph_makes(both):
    """A dispatcher and a worker on 127.0.0.1 run the TFDS graph with TF TV-L1 flow (the service's path); each example
    they send is the one `pipeline.process` makes locally from the same stream and index, flow included."""
    _, records = both
    pre = dataclasses.replace(PRE, channels=Channels(False, True, True), flow=dataclasses.replace(
        PRE.flow, backend="tf_tvl1", tvl1=(("warps", 2), ("inner_iterations", 5))))
    service = tf.data.experimental.service
    dispatcher = service.DispatchServer(service.DispatcherConfig(port=0))
    port = dispatcher.target.rsplit(":", 1)[1]
    worker = service.WorkerServer(service.WorkerConfig(dispatcher_address=f"127.0.0.1:{port}",
                                                       worker_address="127.0.0.1:%port%"))
    try:
        ds = pipeline.make_dataset(records, pre, 2, seed=3, data_service=f"grpc://127.0.0.1:{port}",
                                   job_name="test_tf_tvl1")
        features, labels = next(iter(ds))
    finally:
        worker.stop()
        dispatcher.stop()
    streams, indices = labels["stream"].numpy(), labels["index"].numpy()
    assert len(set(streams)) == 1 and streams[0] > 0  # the worker's own random stream, not a local shard's
    local = {int(i): raw for _, i, raw in pipeline._tfds_stream(records, 3, tf.constant(streams[0])).take(
        int(indices.max()) + 1)}
    for row, index in enumerate(indices):
        key = sources.example_key(3, int(index) + int(streams[0]) * pipeline.STREAM_STRIDE)
        expected = pipeline.process(local[int(index)], key, pre)["inputs"].numpy()
        np.testing.assert_allclose(features["inputs"][row], expected, rtol=0, atol=1e-5)
        assert np.abs(expected[..., :2]).max() > 0.01  # the flow is not trivially 0
