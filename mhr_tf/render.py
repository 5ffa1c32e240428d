"""A vectorized z-buffer triangle rasterizer in numpy, with SURREAL's camera and outputs. The simulator renders its
people with it (`mhr_tf.sim`, whose procedural clothing and lighting are in `mhr_tf.sim.appearance`), and `predict`
draws its overlays.

Camera frame (as everywhere in mhr_tf): x right, y down, z forward, metres; pixel (u, v) has its centre at integer
coordinates, u = fx * x / z + cx, v = fy * y / z + cy. A pixel is covered by a triangle when its centre lies inside
the projected triangle (edges included).

Conventions of the outputs follow SURREAL's files (Varol et al. 2017), so the writer can store them unchanged:
- `segm`: 0 for background, SMPL part + 1 on the body (the `_segm.mat` convention);
- `depth`: metres along the camera's z axis, exactly `BACKGROUND_DEPTH` = 1e10 where no surface is drawn (the
  `_depth.mat` convention).

Depth is perspective-correct: 1/z is affine in screen space over a planar triangle, so the rasterizer interpolates
1/z with the screen-space barycentrics and inverts it; the result is the exact depth of the triangle's plane along
each pixel ray. Colours and normals are interpolated with perspective-correct barycentrics (b_i / z_i, normalised).

Back faces: by default triangles are rasterized two-sided. On a closed mesh the z-buffer hides the back faces
anyway; on an open mesh (or one wound inside-out) nothing disappears. A triangle seen from its back has its
interpolated normal flipped towards the camera, so lighting does not depend on the winding. `cull_back_faces=True`
drops triangles whose geometric normal ((v1 - v0) x (v2 - v0), SMPL's counter-clockwise-outward winding) points away
from the camera: identical images on a closed, outward-wound mesh, with about half the work.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from mhr_tf.body.joints import SMPL_PARTS
from mhr_tf.geometry import SURREAL_IMAGE_HW, SURREAL_INTRINSICS, Intrinsics

# SURREAL's `_depth.mat` stores 1e10 for background pixels (exactly representable in float32).
BACKGROUND_DEPTH = np.float32(1e10)
# Triangles with a vertex closer than this (metres) are skipped: there is no near-plane clipping.
NEAR_CLIP_M = 0.05
# Fragment-candidate budget per chunk: bounds memory when triangles are large (a floor, a close-up).
_CHUNK_CANDIDATES = 1 << 21
_BOX_PAD_PX = 1e-6
# Light arriving from above (y down, so -y) and from the camera's side (-z), when the caller names none.
DEFAULT_LIGHT_DIR = (0.0, -0.6, -0.8)
DEFAULT_AMBIENT = 0.4
# Albedo of a mesh drawn without vertex colours.
_DEFAULT_ALBEDO = 0.7


@dataclasses.dataclass(frozen=True)
class Rendered:
    """One rendered frame, in SURREAL's conventions."""
    rgb: np.ndarray         # [H, W, 3] uint8
    segm: np.ndarray        # [H, W] uint8: 0 background, SMPL part + 1 (SURREAL `_segm.mat`)
    depth: np.ndarray       # [H, W] float32, metres along camera z; BACKGROUND_DEPTH (1e10) off the mesh
    mask: np.ndarray        # [H, W] bool, True where a triangle covers the pixel centre
    face_index: np.ndarray  # [H, W] int32, the visible triangle, -1 off the mesh


@dataclasses.dataclass(frozen=True)
class Fragments:
    """The z-buffer's winners: for every covered pixel, its triangle and barycentrics."""
    face_index: np.ndarray  # [H, W] int32, -1 where nothing is drawn
    bary: np.ndarray        # [N, 3] float64, perspective-correct barycentrics at the N covered pixels
    pixels: np.ndarray      # [N] int64, flat pixel index v * W + u of the covered pixels
    depth: np.ndarray       # [H, W] float32, metres; BACKGROUND_DEPTH off the mesh


def _check_mesh(vertices_cam: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices_cam, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"render: vertices_cam has shape {vertices.shape}, expected [V, 3]")
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"render: faces has shape {faces.shape} dtype {faces.dtype}, expected integer [F, 3]")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"render: faces index vertices outside [0, {len(vertices)})")
    return vertices, faces.astype(np.int64)


def rasterize(vertices_cam: np.ndarray, faces: np.ndarray, intrinsics: Intrinsics = SURREAL_INTRINSICS,
              image_hw: tuple[int, int] = SURREAL_IMAGE_HW, cull_back_faces: bool = False,
              near: float = NEAR_CLIP_M) -> Fragments:
    """Z-buffer visibility: which triangle covers each pixel centre first, with its barycentrics and depth."""
    vertices, faces = _check_mesh(vertices_cam, faces)
    height, width = image_hw
    face_index = np.full(height * width, -1, dtype=np.int64)
    inv_depth = np.zeros(height * width, dtype=np.float64)  # 1/z of the nearest surface so far; 0 = infinitely far

    corners = vertices[faces]  # [F, 3 corners, 3] metres
    z = corners[..., 2]
    keep = np.all(z > near, axis=1)
    if cull_back_faces:
        normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        keep &= np.einsum("fi,fi->f", normal, corners[:, 0]) < 0.0
    # Projected once per vertex, so triangles sharing a vertex see bit-identical screen positions.
    vertex_z = np.where(vertices[:, 2] > near, vertices[:, 2], 1.0)
    u = (intrinsics.fx * vertices[:, 0] / vertex_z + intrinsics.cx)[faces]  # [F, 3] pixels
    v = (intrinsics.fy * vertices[:, 1] / vertex_z + intrinsics.cy)[faces]

    area2 = (u[:, 1] - u[:, 0]) * (v[:, 2] - v[:, 0]) - (u[:, 2] - u[:, 0]) * (v[:, 1] - v[:, 0])
    keep &= np.abs(area2) > 1e-12
    # Bounding boxes padded by a hair: the edge functions, not the box, decide coverage, and a centre lying on an
    # edge up to rounding must reach the edge test of both triangles sharing that edge.
    u0 = np.ceil(u.min(axis=1) - _BOX_PAD_PX).clip(0, width)
    u1 = np.floor(u.max(axis=1) + _BOX_PAD_PX).clip(-1, width - 1)
    v0 = np.ceil(v.min(axis=1) - _BOX_PAD_PX).clip(0, height)
    v1 = np.floor(v.max(axis=1) + _BOX_PAD_PX).clip(-1, height - 1)
    box_w = np.maximum(u1 - u0 + 1, 0).astype(np.int64)
    box_h = np.maximum(v1 - v0 + 1, 0).astype(np.int64)
    keep &= (box_w > 0) & (box_h > 0)
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return _fragments(face_index, inv_depth, np.zeros((0, 3)), idx, height, width)

    faces_kept, u, v, z, area2 = faces[idx], u[idx], v[idx], z[idx], area2[idx]
    # Edge functions: the one opposite corner i runs from corner j = i + 1 to k = i + 2 and is affine in the
    # pixel position, e(p) = A * u + B * v + C. Each edge is evaluated from its lower vertex index to its higher
    # one and negated (exactly) if the triangle runs it the other way, so two triangles sharing an edge get exactly
    # opposite values there: a pixel centre on the edge is covered by at least one of them (no cracks).
    nxt, prv = [1, 2, 0], [2, 0, 1]
    flip = faces_kept[:, nxt] > faces_kept[:, prv]  # [F', 3]
    ua = np.where(flip, u[:, prv], u[:, nxt])
    va = np.where(flip, v[:, prv], v[:, nxt])
    ub = np.where(flip, u[:, nxt], u[:, prv])
    vb = np.where(flip, v[:, nxt], v[:, prv])
    # Orientation folded in (a multiplication by +-1 is exact): inside means all three edge values >= 0.
    sign = np.where(flip, -1.0, 1.0) * np.sign(area2)[:, None]
    coefs = np.stack([(va - vb) * sign, (ub - ua) * sign, (ua * vb - ub * va) * sign], axis=1)  # [F', 3, 3]
    # Screen-space barycentric b_i = e_i / |area2|; 1/z is affine in screen space, sum_i b_i / z_i.
    inv_z = 1.0 / z
    weight = inv_z / np.abs(area2)[:, None]
    plane = np.einsum("fkc,fc->fk", coefs, weight)  # [F', 3 (u, v, 1)]

    box_w, u0, v0 = box_w[idx], u0[idx], v0[idx]
    counts = box_w * box_h[idx]
    starts = np.cumsum(counts) - counts
    # Chunks of faces whose candidate pixels roughly fit the budget (a huge face may overflow its chunk).
    chunk_id = starts // _CHUNK_CANDIDATES
    edges = np.concatenate([[0], np.flatnonzero(np.diff(chunk_id)) + 1, [idx.size]])
    for lo, hi in zip(edges[:-1], edges[1:]):
        n = counts[lo:hi]
        total = int(n.sum())
        # One candidate per pixel centre of each face's bounding box.
        local = np.repeat(np.arange(lo, hi), n)  # [N] index into the kept faces
        offset = np.arange(total) - np.repeat(starts[lo:hi] - starts[lo], n)
        bw = np.repeat(box_w[lo:hi], n)
        pu = np.repeat(u0[lo:hi], n) + offset % bw
        pv = np.repeat(v0[lo:hi], n) + offset // bw
        c = np.repeat(coefs[lo:hi], n, axis=0)  # [N, 3, 3]
        edge = pu[:, None] * c[:, 0] + pv[:, None] * c[:, 1] + c[:, 2]
        inside = np.all(edge >= 0.0, axis=1)
        local, pu, pv = local[inside], pu[inside], pv[inside]
        p = plane[local]
        frag_inv_z = p[:, 0] * pu + p[:, 1] * pv + p[:, 2]
        pix = pv.astype(np.int64) * width + pu.astype(np.int64)
        # Nearest fragment per pixel: sort by pixel, then by 1/z descending; the first of each run wins.
        order = np.lexsort((-frag_inv_z, pix))
        pix, frag_inv_z, local = pix[order], frag_inv_z[order], local[order]
        first = np.ones(pix.size, dtype=bool)
        first[1:] = pix[1:] != pix[:-1]
        pix, frag_inv_z, local = pix[first], frag_inv_z[first], local[first]
        nearer = frag_inv_z > inv_depth[pix]
        inv_depth[pix[nearer]] = frag_inv_z[nearer]
        face_index[pix[nearer]] = local[nearer]

    covered = np.flatnonzero(face_index >= 0)
    local = face_index[covered]
    pu = (covered % width).astype(np.float64)
    pv = (covered // width).astype(np.float64)
    c = coefs[local]
    persp = (pu[:, None] * c[:, 0] + pv[:, None] * c[:, 1] + c[:, 2]) * weight[local]  # b_i / z_i
    persp /= persp.sum(axis=1, keepdims=True)
    face_index[covered] = idx[local]
    return _fragments(face_index, inv_depth, persp, covered, height, width)


def _fragments(face_index: np.ndarray, inv_depth: np.ndarray, bary: np.ndarray, covered: np.ndarray,
               height: int, width: int) -> Fragments:
    depth = np.full(height * width, BACKGROUND_DEPTH, dtype=np.float32)
    depth[covered] = (1.0 / inv_depth[covered]).astype(np.float32)
    return Fragments(face_index=face_index.astype(np.int32).reshape(height, width), bary=bary,
                     pixels=covered, depth=depth.reshape(height, width))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted average of the incident triangles' normals, unit length: [V, 3] float64."""
    vertices = np.asarray(vertices, dtype=np.float64)
    corners = vertices[faces]
    face_normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # length = 2 * area
    flat = faces.reshape(-1)
    normals = np.stack([np.bincount(flat, weights=np.repeat(face_normal[:, k], 3), minlength=len(vertices))
                        for k in range(3)], axis=1)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def render(vertices_cam: np.ndarray, faces: np.ndarray, intrinsics: Intrinsics = SURREAL_INTRINSICS,
           image_hw: tuple[int, int] = SURREAL_IMAGE_HW, vertex_colors: np.ndarray | None = None,
           part_ids: np.ndarray | None = None, light_dir=DEFAULT_LIGHT_DIR, ambient: float = DEFAULT_AMBIENT,
           background: np.ndarray | None = None, cull_back_faces: bool = False) -> Rendered:
    """Render a triangle mesh given in the camera frame.

    vertices_cam: [V, 3] metres, camera frame. faces: [F, 3] vertex indices.
    vertex_colors: [V, 3] albedo in 0..1 (None: uniform grey). part_ids: [V] SMPL part 0..23 of each vertex
    (None: segm is 1 on the whole mesh). light_dir: [3], camera frame, pointing from the surface towards the light.
    ambient: in 0..1; a surface facing the light gets its full albedo, one facing away gets `ambient` of it.
    background: [H, W, 3] uint8 (None: black).

    Shading is Lambertian + ambient with per-vertex normals: albedo * (ambient + (1 - ambient) * max(0, n . l)).
    A pixel's segm label is the part of the covering triangle's vertex nearest to the pixel (largest barycentric).
    """
    vertices, faces = _check_mesh(vertices_cam, faces)
    height, width = image_hw
    frags = rasterize(vertices, faces, intrinsics, image_hw, cull_back_faces=cull_back_faces)
    face = frags.face_index.reshape(-1)[frags.pixels]  # [N]
    corner_ids = faces[face]  # [N, 3]
    bary = frags.bary

    if background is None:
        rgb = np.zeros((height * width, 3), dtype=np.uint8)
    else:
        background = np.asarray(background)
        if background.shape != (height, width, 3) or background.dtype != np.uint8:
            raise ValueError(f"render: background has shape {background.shape} dtype {background.dtype}, "
                             f"expected ({height}, {width}, 3) uint8")
        rgb = background.reshape(-1, 3).copy()

    if vertex_colors is None:
        albedo = np.full((face.size, 3), _DEFAULT_ALBEDO)
    else:
        vertex_colors = np.asarray(vertex_colors, dtype=np.float64)
        if vertex_colors.shape != vertices.shape:
            raise ValueError(f"render: vertex_colors has shape {vertex_colors.shape}, expected {vertices.shape}")
        albedo = np.einsum("nc,nck->nk", bary, vertex_colors[corner_ids])

    normals = vertex_normals(vertices, faces)
    normal = np.einsum("nc,nck->nk", bary, normals[corner_ids])
    # Two-sided lighting: a triangle seen from behind shades with its normals turned towards the camera.
    tri = vertices[corner_ids]
    geometric = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    seen_from_back = np.einsum("nk,nk->n", geometric, tri[:, 0]) > 0.0
    normal[seen_from_back] *= -1.0
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    light = np.asarray(light_dir, dtype=np.float64)
    light = light / np.linalg.norm(light)
    shade = ambient + (1.0 - ambient) * np.maximum(normal @ light, 0.0)
    rgb[frags.pixels] = np.clip(np.rint(albedo * shade[:, None] * 255.0), 0, 255).astype(np.uint8)

    segm = np.zeros(height * width, dtype=np.uint8)
    if part_ids is None:
        segm[frags.pixels] = 1
    else:
        part_ids = np.asarray(part_ids)
        if part_ids.shape != (len(vertices),):
            raise ValueError(f"render: part_ids has shape {part_ids.shape}, expected ({len(vertices)},)")
        nearest = corner_ids[np.arange(face.size), np.argmax(bary, axis=1)]
        segm[frags.pixels] = part_ids[nearest].astype(np.uint8) + 1

    return Rendered(rgb=rgb.reshape(height, width, 3), segm=segm.reshape(height, width), depth=frags.depth,
                    mask=frags.face_index >= 0, face_index=frags.face_index)


