"""The z-buffer rasterizer against closed forms: point-in-triangle, ray-plane and ray-box intersection, a sphere's
silhouette cone, Lambert's cosine law. All references are float64 numpy written here."""
import numpy as np
import pytest

from mhr_tf.body.joints import SMPL_PARTS
from mhr_tf.geometry import SURREAL_IMAGE_HW, SURREAL_INTRINSICS
from mhr_tf import render
from mhr_tf.sim import appearance

K = SURREAL_INTRINSICS
H, W = SURREAL_IMAGE_HW


def _unproject(uv, z):
    """Camera-frame points whose projections are the pixel positions `uv` at depths `z`."""
    uv, z = np.asarray(uv, float), np.broadcast_to(np.asarray(z, float), (len(uv),))
    return np.stack([(uv[:, 0] - K.cx) * z / K.fx, (uv[:, 1] - K.cy) * z / K.fy, z], axis=1)


def _pixel_rays():
    """[H, W, 3] direction of each pixel centre's ray, z = 1."""
    v, u = np.mgrid[0:H, 0:W].astype(float)
    return np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u)], axis=-1)


def _ray_triangle(tri):
    """Ray through every pixel centre against one triangle: (hit [H, W], z [H, W], barycentrics [H, W, 3])."""
    d = _pixel_rays()
    e1, e2 = tri[1] - tri[0], tri[2] - tri[0]
    # Solve t * d = v0 + b1 * e1 + b2 * e2 per pixel (Cramer's rule).
    m = np.stack([np.broadcast_to(-e1, d.shape), np.broadcast_to(-e2, d.shape), d], axis=-1)  # columns
    rhs = np.broadcast_to(tri[0], d.shape)
    sol = np.linalg.solve(m, rhs[..., None])[..., 0]
    b1, b2, t = sol[..., 0], sol[..., 1], sol[..., 2]
    bary = np.stack([1 - b1 - b2, b1, b2], axis=-1)
    return np.all(bary >= 0, axis=-1) & (t > 0), t * d[..., 2], bary


def _box_mesh(half, rotation, centre):
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float) * half
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = []
    for a, b, c, d in quads:
        faces += [[a, b, c], [a, c, d]]
    faces = np.array(faces)
    # Wind every triangle counter-clockwise seen from outside (normal away from the box centre).
    tri = corners[faces]
    outward = np.einsum("fi,fi->f", np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), tri.mean(1)) > 0
    faces[~outward] = faces[~outward][:, ::-1]
    return corners @ rotation.T + centre, faces


def _rot_y(deg):
    a = np.radians(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def _rot_x(deg):
    a = np.radians(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def _uv_sphere(radius, n_lat=48, n_lon=64):
    theta = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), -np.cos(t)], -1).reshape(-1, 3)
    vertices = np.concatenate([[[0, 0, -1.0]], ring, [[0, 0, 1.0]]]) * radius  # pole 0 faces the camera (-z)
    faces = [[0, 1 + j, 1 + (j + 1) % n_lon] for j in range(n_lon)]
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a, b = 1 + i * n_lon + j, 1 + i * n_lon + (j + 1) % n_lon
            faces += [[a, a + n_lon, b + n_lon], [a, b + n_lon, b]]
    last, base = len(vertices) - 1, 1 + (n_lat - 2) * n_lon
    faces += [[last, base + (j + 1) % n_lon, base + j] for j in range(n_lon)]
    return vertices, np.array(faces)


def test_single_triangle_covers_exactly_the_pixel_centres_inside_it():
    uv = np.array([[50.3, 40.7], [120.6, 60.2], [70.1, 110.9]])
    out = render.render(_unproject(uv, 2.0), np.array([[0, 1, 2]]))
    v, u = np.mgrid[0:H, 0:W].astype(float)
    signs = []
    for i in range(3):
        a, b = uv[i], uv[(i + 1) % 3]
        signs.append((b[0] - a[0]) * (v - a[1]) - (b[1] - a[1]) * (u - a[0]))
    signs = np.stack(signs)
    expected = np.all(signs >= 0, axis=0) | np.all(signs <= 0, axis=0)
    assert expected.sum() > 1500
    np.testing.assert_array_equal(out.mask, expected)
    np.testing.assert_allclose(out.depth[expected], 2.0, rtol=1e-6)
    assert np.all(out.depth[~expected] == np.float32(1e10))
    assert np.all(out.segm[expected] == 1) and np.all(out.segm[~expected] == 0)
    assert np.all(out.face_index[expected] == 0) and np.all(out.face_index[~expected] == -1)


def test_depth_and_colours_are_perspective_correct_on_a_tilted_triangle():
    tri = np.array([[-0.6, -0.3, 1.5], [0.5, -0.2, 3.5], [0.0, 0.5, 2.2]])
    colours = np.eye(3)
    out = render.render(tri, np.array([[0, 1, 2]]), vertex_colors=colours, ambient=1.0)
    hit, z, bary = _ray_triangle(tri)
    interior = hit & (bary.min(-1) > 1e-3)  # away from edges, where float rounding may flip coverage
    assert interior.sum() > 3000 and np.all(out.mask[interior])
    np.testing.assert_allclose(out.depth[interior], z[interior], rtol=2e-6)
    # Barycentrics of the 3D hit point decide the colour (ambient 1: unlit albedo).
    np.testing.assert_allclose(out.rgb[interior].astype(float), np.rint(bary[interior] * 255), atol=1.0)
    # The test has teeth: screen-space-linear depth would be off by millimetres to centimetres here.
    uv = np.stack([K.fx * tri[:, 0] / tri[:, 2] + K.cx, K.fy * tri[:, 1] / tri[:, 2] + K.cy], 1)
    v, u = np.nonzero(interior)
    screen_bary = np.linalg.solve(np.vstack([uv.T, np.ones(3)]), np.vstack([u, v, np.ones_like(u)]))
    assert np.abs(screen_bary.T @ tri[:, 2] - z[interior]).max() > 0.05


def test_nearer_of_two_overlapping_triangles_wins_in_either_order():
    near = _unproject([[60.2, 40.3], [200.7, 50.1], [100.4, 180.6]], 2.0)
    far = _unproject([[120.3, 30.8], [260.1, 120.4], [90.6, 150.2]], 3.0)
    vertices = np.concatenate([near, far])
    colours = np.repeat(np.array([[1.0, 0, 0], [0, 0, 1.0]]), 3, axis=0)
    for faces in (np.array([[0, 1, 2], [3, 4, 5]]), np.array([[3, 4, 5], [0, 1, 2]])):
        out = render.render(vertices, faces, vertex_colors=colours, ambient=1.0)
        in_near, _, _ = _ray_triangle(near)
        in_far, _, _ = _ray_triangle(far)
        both = in_near & in_far
        assert both.sum() > 1000
        assert np.all(out.rgb[both] == [255, 0, 0])
        np.testing.assert_allclose(out.depth[both], 2.0, rtol=1e-6)
        only_far = in_far & ~in_near
        assert np.all(out.rgb[only_far] == [0, 0, 255])
        np.testing.assert_allclose(out.depth[only_far], 3.0, rtol=1e-6)


def test_sphere_depth_at_centre_and_silhouette_match_the_analytic_cone():
    radius, centre = 0.5, np.array([0.4, -0.2, 4.0])
    vertices, faces = _uv_sphere(radius)
    out = render.render(vertices + centre, faces)
    # The ray through the sphere centre's projection meets the surface at |c| - r along it.
    u0, v0 = K.fx * centre[0] / centre[2] + K.cx, K.fy * centre[1] / centre[2] + K.cy
    rays = _pixel_rays()
    direction = rays / np.linalg.norm(rays, axis=-1, keepdims=True)
    cosine = direction @ (centre / np.linalg.norm(centre))
    dist_c = np.linalg.norm(centre)
    disc = (dist_c * cosine) ** 2 - (dist_c ** 2 - radius ** 2)
    inside = disc > 0
    ray_len = dist_c * cosine - np.sqrt(np.where(inside, disc, 0))
    z_true = ray_len * direction[..., 2]
    iu, iv = int(round(u0)), int(round(v0))
    # Tessellation (64 x 48 facets, chord sagitta r(1 - cos(pi/64)) ~ 0.6 mm) bounds the error.
    assert abs(out.depth[iv, iu] - z_true[iv, iu]) < 1.5e-3
    # Away from grazing incidence (within 0.9 of the cone), depth error stays ~ sagitta / cos(incidence).
    central = np.arccos(np.clip(cosine, -1, 1)) < 0.9 * np.arcsin(radius / np.linalg.norm(centre))
    np.testing.assert_allclose(out.depth[central], z_true[central], atol=3e-3)
    # Silhouette: the analytic cone's pixels, up to the inscribed polygon's boundary band.
    assert abs(out.mask.sum() - inside.sum()) / inside.sum() < 0.01
    angle = np.arccos(np.clip(cosine, -1, 1))
    band = np.abs(angle - np.arcsin(radius / dist_c)) * K.fx  # ~ pixels from the true outline
    assert np.all(band[out.mask != inside] < 1.5)


def test_rotated_cube_depth_equals_ray_box_intersection_without_cracks():
    half, rotation, centre = 0.4, _rot_x(20) @ _rot_y(45), np.array([0.1, 0.05, 3.0])
    vertices, faces = _box_mesh(half, rotation, centre)
    for cull in (False, True):
        out = render.render(vertices, faces, cull_back_faces=cull)
        # Slab method in the box frame, float64.
        d = _pixel_rays() @ rotation  # ray directions in the box frame (rotation^T d)
        o = -centre @ rotation
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (-half - o) / d, (half - o) / d
        t_near = np.minimum(t1, t2).max(-1)
        t_far = np.maximum(t1, t2).min(-1)
        hit = t_far >= t_near
        margin = (t_far - t_near) > 1e-3  # not grazing an outline
        np.testing.assert_array_equal(out.mask[hit & margin], True)
        np.testing.assert_allclose(out.depth[hit & margin], t_near[hit & margin], rtol=1e-6)
        assert not out.mask[~hit].any() or np.all((t_near - t_far)[out.mask & ~hit] < 1e-3)
    # The cube is viewed corner-on: pixel centres lie on shared edges, and none of them fell through.
    assert out.mask.sum() > 10000


def test_back_faces_are_drawn_two_sided_and_dropped_only_when_culling():
    uv = np.array([[60.0, 40.0], [200.0, 50.0], [100.0, 180.0]])
    tri = _unproject(uv, 2.0)
    normal = np.cross(tri[1] - tri[0], tri[2] - tri[0])
    assert normal @ tri[0] > 0  # the geometric normal points away from the camera: a back face
    assert render.render(tri, np.array([[0, 1, 2]])).mask.sum() > 1000
    assert render.render(tri, np.array([[0, 1, 2]]), cull_back_faces=True).mask.sum() == 0
    assert render.render(tri, np.array([[0, 2, 1]]), cull_back_faces=True).mask.sum() > 1000


@pytest.mark.parametrize("winding", [[0, 1, 2, 0, 2, 3], [0, 2, 1, 0, 3, 2]])
def test_shading_follows_lambert_plus_ambient_for_either_winding(winding):
    square = _unproject([[100, 60], [220, 60], [220, 180], [100, 180]], 2.5)  # normal along -z (towards camera)
    faces = np.array(winding).reshape(2, 3)
    albedo = np.array([0.8, 0.6, 0.4])
    ambient, tilt = 0.3, np.radians(60)
    light = np.array([np.sin(tilt), 0.0, -np.cos(tilt)])
    out = render.render(square, faces, vertex_colors=np.tile(albedo, (4, 1)), light_dir=light, ambient=ambient)
    expected = np.rint(albedo * (ambient + (1 - ambient) * np.cos(tilt)) * 255)
    np.testing.assert_array_equal(out.rgb[120, 160], expected)
    # Lit from behind the square: only the ambient term remains.
    dark = render.render(square, faces, vertex_colors=np.tile(albedo, (4, 1)), light_dir=-light, ambient=ambient)
    np.testing.assert_array_equal(dark.rgb[120, 160], np.rint(albedo * ambient * 255))


def test_segm_labels_each_pixel_with_the_part_of_the_nearest_vertex_plus_one():
    tri = np.array([[-0.6, -0.3, 1.5], [0.5, -0.2, 3.5], [0.0, 0.5, 2.2]])
    part_ids = np.array([SMPL_PARTS.index("head"), SMPL_PARTS.index("left_knee"), SMPL_PARTS.index("pelvis")])
    out = render.render(tri, np.array([[0, 1, 2]]), part_ids=part_ids)
    hit, _, bary = _ray_triangle(tri)
    top2 = np.sort(bary, axis=-1)[..., -2:]
    clear = hit & (top2[..., 1] - top2[..., 0] > 1e-3) & (bary.min(-1) > 1e-3)
    expected = part_ids[np.argmax(bary, axis=-1)] + 1
    np.testing.assert_array_equal(out.segm[clear], expected[clear])
    assert set(np.unique(out.segm)) == {0, 1, 5, 16}  # background, pelvis+1, left_knee+1, head+1


def test_background_is_kept_off_the_mesh_with_surreal_depth_1e10():
    background = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    tri = _unproject([[10.0, 10.0], [60.0, 12.0], [30.0, 70.0]], 2.0)
    out = render.render(tri, np.array([[0, 1, 2]]), background=background)
    off = ~out.mask
    np.testing.assert_array_equal(out.rgb[off], background[off])
    assert out.depth.dtype == np.float32 and np.all(out.depth[off] == 1e10)
    assert out.segm.dtype == np.uint8 and np.all(out.segm[off] == 0)


def test_bad_inputs_name_the_argument():
    tri = _unproject([[10.0, 10.0], [60.0, 12.0], [30.0, 70.0]], 2.0)
    with pytest.raises(ValueError, match="faces"):
        render.render(tri, np.array([[0, 1, 3]]))
    with pytest.raises(ValueError, match="vertex_colors"):
        render.render(tri, np.array([[0, 1, 2]]), vertex_colors=np.ones((2, 3)))
    with pytest.raises(ValueError, match="background"):
        render.render(tri, np.array([[0, 1, 2]]), background=np.zeros((10, 10, 3), np.uint8))


def _limb_points():
    """A rest-pose point cloud in SMPL's frame (y up, left +x) with every part: enough for clothing rules."""
    rng = np.random.default_rng(5)
    centres = {"pelvis": (0, -0.03, 0), "spine1": (0, 0.1, 0), "spine2": (0, 0.22, 0), "spine3": (0, 0.33, 0),
               "neck": (0, 0.5, 0), "head": (0, 0.64, 0.02), "left_collar": (0.1, 0.43, 0),
               "right_collar": (-0.1, 0.43, 0)}
    for side, s in (("left", 1), ("right", -1)):
        centres.update({f"{side}_shoulder": (s * 0.31, 0.45, 0), f"{side}_elbow": (s * 0.57, 0.45, 0),
                        f"{side}_wrist": (s * 0.74, 0.45, 0), f"{side}_hand": (s * 0.82, 0.45, 0),
                        f"{side}_hip": (s * 0.09, -0.28, 0), f"{side}_knee": (s * 0.1, -0.67, 0),
                        f"{side}_ankle": (s * 0.1, -0.91, 0.03), f"{side}_foot": (s * 0.1, -0.93, 0.13)})
    points, parts = [], []
    for name, c in centres.items():
        points.append(np.asarray(c) + rng.normal(0, 0.04, (40, 3)))
        parts.append(np.full(40, SMPL_PARTS.index(name)))
    return np.concatenate(points), np.concatenate(parts)


def test_clothing_is_deterministic_per_seed_and_varies_across_seeds():
    points, parts = _limb_points()
    a = appearance.clothing_colors(points, parts, np.random.default_rng(3))
    b = appearance.clothing_colors(points, parts, np.random.default_rng(3))
    c = appearance.clothing_colors(points, parts, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.02
    assert a.dtype == np.float32 and a.shape == points.shape and a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("style", ["train", "shifted"])
def test_clothing_gives_both_shoes_one_colour_and_hands_a_skin_tone(style):
    points, parts = _limb_points()
    left, right = (np.isin(parts, [SMPL_PARTS.index(f"{side}_ankle"), SMPL_PARTS.index(f"{side}_foot")])
                   for side in ("left", "right"))
    hands = np.isin(parts, [SMPL_PARTS.index("left_hand"), SMPL_PARTS.index("right_hand")])
    shoe_means = []
    for seed in range(8):
        colours = appearance.clothing_colors(points, parts, np.random.default_rng(seed), style).astype(float)
        # Both shoes share a colour: only the brightness noise (~10%) separates them, never the hue.
        left_mean, right_mean = colours[left].mean(0), colours[right].mean(0)
        np.testing.assert_allclose(left_mean / left_mean.sum(), right_mean / right_mean.sum(), atol=0.02)
        shoe_means.append(left_mean)
        hand = colours[hands].mean(0)
        assert hand[0] >= hand[1] >= hand[2] - 0.02  # skin: red >= green >= blue, unlike most garments
    assert np.ptp(np.array(shoe_means), axis=0).max() > 0.2  # while shoes differ from person to person


def test_shifted_clothing_is_more_saturated_or_lighter_than_train():
    points, parts = _limb_points()
    torso = np.isin(parts, [SMPL_PARTS.index(p) for p in ("spine1", "spine2", "spine3")])

    def mean_brightness(style):
        values = [appearance.clothing_colors(points, parts, np.random.default_rng(s), style)[torso].max(1).mean()
                  for s in range(30)]
        return np.mean(values)
    # Shifted palettes are neon or pastel (value 0.85-1); train's value spans 0.15-0.95.
    assert mean_brightness("shifted") > mean_brightness("train") + 0.1
    with pytest.raises(ValueError, match="style"):
        appearance.clothing_colors(points, parts, np.random.default_rng(0), "weird")


def test_random_lighting_points_from_above_towards_the_camera_in_train_style():
    rng = np.random.default_rng(0)
    for _ in range(50):
        light, ambient = appearance.random_lighting(rng, "train")
        assert abs(np.linalg.norm(light) - 1) < 1e-9 and light[1] < 0 and light[2] < 0 and 0.3 <= ambient <= 0.6


def test_lighting_harshness_moves_every_range_from_train_to_shifted():
    for style, harshness in (("train", 0.0), ("shifted", 1.0)):
        for seed in range(5):
            light, ambient = appearance.random_lighting(np.random.default_rng(seed), style)
            again = appearance.random_lighting(np.random.default_rng(seed), harshness=harshness)
            np.testing.assert_array_equal(again[0], light)
            assert again[1] == ambient
    # Halfway, the ambient share is drawn between the middles of the two ranges' bounds: (0.21, 0.475).
    ambients = [appearance.random_lighting(np.random.default_rng(s), harshness=0.5)[1] for s in range(200)]
    assert 0.21 <= min(ambients) and max(ambients) <= 0.475
    with pytest.raises(ValueError, match="harshness"):
        appearance.random_lighting(np.random.default_rng(0), harshness=1.5)
