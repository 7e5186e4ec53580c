"""Render one SYNTHETIC street scene: a procedural picture and its label map.

    image, label = render_scene(rng, size=(H, W))
    image: uint8 (H, W, 3); label: uint8 (H, W), class ids 0..10 and 255 = ignore.

Nothing here is a photograph of a street: a pinhole camera looks down a
straight street (ground plane, building or park on each side, a far wall),
and billboard objects (poles, signs, people, cars, trees) stand on it. The
design goal is that two kinds of student are each good at something:
- context classes: road and sidewalk share one appearance in most scenes
  (drawn from one material pool), as do terrain and vegetation, and building
  and fence. What tells them apart is where they are: the road is the
  trapezoid running to the vanishing point, sidewalks flank it, terrain is
  ground, vegetation stands up, a fence is a low wall in front of buildings.
- thin and small classes: poles (often 1-2 px wide), signs, distant people;
  lane markings are painted on the road and labelled road.
- nuisances: perspective and scale with depth, occlusion (a z-buffer plus
  painter's order for objects, far to near), random camera height, pitch
  (horizon row) and yaw (vanishing point), shadow bands across road and
  sidewalk, haze with distance, blur and sensor noise, near objects that cut
  large regions in two.
Every random number is drawn from `rng` in an order that does not depend on
`size`, so one seed gives the same scene at every resolution.
Units: metres in the world, pixels on the screen.
"""

import numpy as np
from PIL import Image, ImageFilter

from .street_classes import BUILDING, FENCE, ROAD, SIDEWALK, SKY, TERRAIN, VEGETATION
from .street_objects import draw_objects, paint_part
from .textures import TEXTURE_ID, TILE, texture_stack

# Appearance pools: (RGB tint in 0..1, texture). Classes that share a pool can look identical.
GROUND_POOL = [((0.34, 0.34, 0.36), "asphalt"), ((0.52, 0.50, 0.46), "gravel"), ((0.56, 0.50, 0.48), "brick"),
               ((0.46, 0.47, 0.50), "plaster"), ((0.26, 0.26, 0.28), "gravel"), ((0.50, 0.40, 0.36), "asphalt")]
GREEN_POOL = [((0.30, 0.45, 0.18), "grass"), ((0.42, 0.46, 0.22), "grass"), ((0.20, 0.34, 0.14), "grass"),
              ((0.47, 0.45, 0.28), "grass"), ((0.26, 0.40, 0.22), "plaster")]
FACADE_POOL = [((0.55, 0.32, 0.26), "brick"), ((0.70, 0.64, 0.52), "plaster"), ((0.52, 0.52, 0.54), "plaster"),
               ((0.45, 0.45, 0.45), "brick"), ((0.62, 0.55, 0.45), "brick"), ((0.40, 0.36, 0.34), "gravel")]
SKY_POOL = [((0.45, 0.62, 0.85), "clouds"), ((0.70, 0.74, 0.80), "clouds"), ((0.55, 0.68, 0.82), "clouds")]
SEGMENTS = 16  # buildings per side of the street


class Canvas:
    """Per-pixel buffers a scene is painted into, then shaded once.

    depth: float32 (H, W) metres (inf = nothing yet); label: uint8 (H, W);
    material: int16 (H, W) row in `self.materials`; u, v: int32 (H, W) texture
    coordinates in texture pixels. Painting is z-tested, so a surface only
    lands where it is nearer than what is already there.
    """

    def __init__(self, height, width):
        self.height, self.width = height, width
        self.depth = np.full((height, width), np.inf, np.float32)
        self.label = np.full((height, width), SKY, np.uint8)
        self.material = np.zeros((height, width), np.int16)
        self.u = np.zeros((height, width), np.int32)
        self.v = np.zeros((height, width), np.int32)
        self.tints, self.textures = [], []

    def add_material(self, tint, texture):
        self.tints.append(tint)
        self.textures.append(TEXTURE_ID[texture])
        return len(self.tints) - 1

    def paint(self, rows, cols, visible, z, label, material, u, v):
        """Paint the window [rows, cols] where `visible` and nearer than what is there.

        visible: bool, z: float, material/label: int or arrays, u/v: int arrays, all
        broadcastable to the window's shape.
        """
        win = (rows, cols)
        mask = (z < self.depth[win]) & visible  # broadcasts to the window
        for buffer, value in ((self.depth, z), (self.label, label), (self.material, material),
                              (self.u, u), (self.v, v)):
            np.copyto(buffer[win], value, casting="unsafe", where=mask)


def _pick(rng, pool, jitter=0.08):
    """A material from `pool` with a small per-scene colour change: (tint array, texture name)."""
    tint, texture = pool[int(rng.integers(len(pool)))]
    return np.clip(np.array(tint) * rng.uniform(1 - jitter, 1 + jitter, 3), 0, 1), texture


def _pick_many(rng, pool, count, jitter=0.08):
    """`count` materials from `pool` at once (one call to rng per kind of draw: fast)."""
    choice = rng.integers(len(pool), size=count)
    tints = np.clip(np.array([pool[i][0] for i in choice]) * rng.uniform(1 - jitter, 1 + jitter, (count, 3)), 0, 1)
    return [(tint, pool[i][1]) for tint, i in zip(tints, choice)]


def _segments(rng, start, length_range, count):
    """Random lengths along the street: boundaries (count + 1,) from `start` on, in metres."""
    return start + np.concatenate([[0.0], np.cumsum(rng.uniform(*length_range, count))])


class StreetCamera:
    """Pinhole camera over a flat ground: world (X lateral, Y up, z depth) metres -> pixels."""

    def __init__(self, rng, height, width):
        self.horizon_frac = rng.uniform(0.28, 0.52)  # pitch: where the horizon row lies
        self.vanish_frac = rng.uniform(0.35, 0.65)   # yaw: where the street's vanishing point lies
        self.focal_frac = rng.uniform(0.55, 0.85)    # focal length in image widths
        self.cam_h = rng.uniform(1.2, 2.6)           # camera height above the ground, metres
        self.resize(height, width)

    def resize(self, height, width):
        self.y_h = self.horizon_frac * height
        self.x_v = self.vanish_frac * width
        self.f = self.focal_frac * width
        self.dx = (np.arange(width, dtype=np.float32) + 0.5 - self.x_v)[None, :]   # (1, W)
        self.dy = (np.arange(height, dtype=np.float32) + 0.5 - self.y_h)[:, None]  # (H, 1)

    def to_x(self, X, z):
        return self.x_v + self.f * X / z

    def to_y(self, Y, z):
        return self.y_h + self.f * (self.cam_h - Y) / z


def draw_street(rng):
    """Every random choice of one scene, in metres and fractions (no pixels): a plain dict."""
    s = {"camera": StreetCamera(rng, 1, 1)}
    road_half = rng.uniform(3.0, 7.0)
    s["road_center"] = rng.uniform(-0.5, 0.5) * road_half  # the camera is not always mid-road
    s["road_half"] = road_half
    s["sidewalk"] = rng.uniform(1.5, 4.5, 2)  # widths, left and right
    road_mat = _pick(rng, GROUND_POOL)
    # The heart of the design: most scenes pave road and sidewalk alike, so only layout separates them.
    s["road_mat"] = road_mat
    s["sidewalk_mat"] = road_mat if rng.uniform() < 0.7 else _pick(rng, GROUND_POOL)
    s["ground_scale"] = rng.uniform(25, 60)  # texture pixels per metre, shared by road and sidewalk
    s["centre_line"] = rng.uniform() < 0.8
    s["edge_lines"] = rng.uniform() < 0.4
    s["dash"] = rng.uniform(2.0, 5.0)
    terrain_mat = _pick(rng, GREEN_POOL)
    s["terrain_mat"] = terrain_mat
    s["vegetation_mat"] = terrain_mat if rng.uniform() < 0.6 else _pick(rng, GREEN_POOL)
    sides = []
    for _ in range(2):  # left, right
        side = {"park": rng.uniform() < 0.3,
                "gap": 0.0 if rng.uniform() < 0.5 else rng.uniform(1.0, 5.0),  # terrain verge before the facade
                "bounds": _segments(rng, 0.0, (6.0, 25.0), SEGMENTS),  # the last one runs on to the horizon
                "heights": np.where(rng.uniform(size=SEGMENTS) < 0.12, 0.0, rng.uniform(5.0, 25.0, SEGMENTS)),
                "materials": _pick_many(rng, FACADE_POOL, SEGMENTS),
                "windows": rng.uniform(size=SEGMENTS) < 0.5,
                "window_pitch": rng.uniform(2.5, 4.0, 2),  # metres between window centres (along, up)
                "facade_scale": rng.uniform(30, 60),
                "tree_line": rng.uniform(3.0, 15.0),
                "tree_height": rng.uniform(4.0, 9.0),
                "tree_wave": rng.uniform(0.1, 0.6, 3),
                "brightness": rng.uniform(0.7, 1.15)}
        has_fence = rng.uniform() < 0.5
        fence_start = rng.uniform(2.0, 40.0)
        side["fence"] = (fence_start, fence_start + rng.uniform(5.0, 40.0), rng.uniform(0.7, 1.6)) if has_fence else None
        side["fence_mat"] = side["materials"][0] if rng.uniform() < 0.6 else _pick(rng, FACADE_POOL)
        sides.append(side)
    s["sides"] = sides
    s["end_wall"] = rng.uniform(40.0, 150.0) if rng.uniform() < 0.5 else None
    s["end_heights"] = rng.uniform(6.0, 30.0, 8)
    s["end_mat"] = _pick(rng, FACADE_POOL)
    s["sky_mat"] = _pick(rng, SKY_POOL)
    s["light"] = rng.uniform(0.75, 1.2)
    s["shadow_edge"] = rng.uniform(-1.0, 1.0) * (road_half + 3.0) if rng.uniform() < 0.6 else None
    s["shadow_strength"] = rng.uniform(0.45, 0.75)
    s["shadow_bands"] = np.sort(rng.uniform(3.0, 60.0, int(rng.integers(0, 4))))
    s["band_widths"] = rng.uniform(1.0, 4.0, 4)
    s["haze"] = rng.uniform(80.0, 400.0)
    s["blur"] = int(rng.choice([0, 0, 1, 2]))
    s["noise"] = rng.uniform(1.0, 7.0)
    s["noise_offset"] = rng.uniform(0.0, 1.0, 2)
    s["objects"] = draw_objects(rng, s)
    return s


def _paint_ground(canvas, cam, s):
    """Road, sidewalks, terrain and lane markings on the ground plane below the horizon."""
    first = int(np.clip(np.ceil(cam.y_h - 0.5), 0, canvas.height))  # first row whose centre is below the horizon
    if first >= canvas.height:
        return
    rows = slice(first, canvas.height)
    dy = np.maximum(cam.dy[rows], 1e-3)
    z = cam.f * cam.cam_h / dy                      # (h, 1) depth of each row, metres
    X = cam.dx * z / cam.f - s["road_center"]       # (h, W) lateral position from the road's centre
    half = s["road_half"]
    label = np.full(X.shape, TERRAIN, np.uint8)
    material = np.full(X.shape, canvas.add_material(*s["terrain_mat"]), np.int16)
    sidewalk = ((X < -half) & (X >= -half - s["sidewalk"][0])) | ((X > half) & (X <= half + s["sidewalk"][1]))
    road = np.abs(X) <= half
    label[sidewalk], label[road] = SIDEWALK, ROAD
    material[sidewalk] = canvas.add_material(*s["sidewalk_mat"])
    material[road] = canvas.add_material(*s["road_mat"])
    paint = np.zeros(X.shape, bool)  # lane markings: labelled road, painted white
    dashes = np.mod(z, 2.0 * s["dash"]) < s["dash"]
    if s["centre_line"]:
        paint |= (np.abs(X) < 0.08) & dashes
    if s["edge_lines"]:
        paint |= (np.abs(np.abs(X) - (half - 0.25)) < 0.08)
    material[paint] = canvas.add_material((0.85, 0.85, 0.82), "plaster")
    scale = s["ground_scale"]
    u, v = (X * scale).astype(np.int32), np.broadcast_to((z * scale).astype(np.int32), X.shape)
    canvas.paint(rows, slice(None), True, z.astype(np.float32), label, material, u, v)


def _paint_side(canvas, cam, s, index):
    """One side of the street: a building facade (with gaps, windows, a fence) or a park's tree line."""
    side, sign = s["sides"][index], (-1.0 if index == 0 else 1.0)
    edge = s["road_half"] + s["sidewalk"][index]   # sidewalk's outer edge, metres from the road centre
    cols = np.flatnonzero(sign * cam.dx[0] > 0.5)
    if cols.size == 0:
        return
    cols = slice(cols[0], cols[-1] + 1)
    dx = np.abs(cam.dx[:, cols])
    last = s["end_wall"] or 1e4
    # Fence: a low wall along the sidewalk's outer edge, from the facade pool.
    if side["fence"] is not None:
        start, stop, height = side["fence"]
        lateral = abs(s["road_center"] + sign * (edge + 0.05))
        z = cam.f * lateral / dx                          # (1, w) depth where each column meets the fence
        Y = cam.cam_h - cam.dy * z / cam.f                # (H, w) height of each pixel on the fence plane
        visible = (Y >= 0) & (Y <= height) & (z >= start) & (z <= stop)
        scale = side["facade_scale"]
        canvas.paint(slice(None), cols, visible, z, FENCE, canvas.add_material(*side["fence_mat"]),
                     (z * scale).astype(np.int32), (Y * scale).astype(np.int32))
    if side["park"]:  # a tree line: vegetation standing behind terrain
        lateral = abs(s["road_center"] + sign * (edge + side["tree_line"]))
        z = cam.f * lateral / dx
        a, b, c = side["tree_wave"]
        top = side["tree_height"] * (1.0 + a * np.sin(z * 0.7 + 3 * b) + 0.5 * b * np.sin(z * 2.3) + 0.3 * c * np.sin(z * 5.1))
        Y = cam.cam_h - cam.dy * z / cam.f
        visible = (Y >= 0) & (Y <= top) & (z < last)
        canvas.paint(slice(None), cols, visible, z, VEGETATION, canvas.add_material(*s["vegetation_mat"]),
                     (z * 40).astype(np.int32), (Y * 40).astype(np.int32))
        return
    lateral = abs(s["road_center"] + sign * (edge + side["gap"]))
    z = cam.f * lateral / dx
    segment = np.clip(np.searchsorted(side["bounds"], z) - 1, 0, len(side["heights"]) - 1)  # (1, w)
    Y = cam.cam_h - cam.dy * z / cam.f
    visible = (Y >= 0) & (Y <= side["heights"][segment]) & (z < last)
    first = len(canvas.tints)
    for tint, texture in side["materials"]:
        canvas.add_material(tint * side["brightness"], texture)
    material = (first + segment).astype(np.int16) + np.zeros(Y.shape, np.int16)
    pitch_along, pitch_up = side["window_pitch"]
    windows = (side["windows"][segment] & (np.mod(z, pitch_along) < 0.45 * pitch_along)
               & (np.mod(Y, pitch_up) < 0.5 * pitch_up) & (Y > 2.0) & (Y < side["heights"][segment] - 1.0))
    material[windows] = canvas.add_material((0.16, 0.19, 0.24), "flat")
    scale = side["facade_scale"]
    canvas.paint(slice(None), cols, visible, z, BUILDING, material,
                 (z * scale).astype(np.int32), (Y * scale).astype(np.int32))


def _paint_end_wall(canvas, cam, s):
    """Buildings across the far end of the street (a bend), facing the camera."""
    z = s["end_wall"]
    if z is None:
        return
    X = cam.dx * z / cam.f                            # (1, W)
    Y = cam.cam_h - cam.dy * z / cam.f                # (H, 1)
    heights = s["end_heights"][np.clip(((X + 60.0) / 15.0).astype(int), 0, len(s["end_heights"]) - 1)]
    canvas.paint(slice(None), slice(None), (Y >= 0) & (Y <= heights), np.float32(z), BUILDING,
                 canvas.add_material(*s["end_mat"]), (X * 40).astype(np.int32), (Y * 40).astype(np.int32))


def render_street(s, size):
    """Render the scene described by `s` (from draw_street) at size (H, W) -> (image uint8 (H, W, 3), label uint8 (H, W))."""
    height, width = size
    cam = s["camera"]
    cam.resize(height, width)
    canvas = Canvas(height, width)
    canvas.add_material(*s["sky_mat"])  # material 0: the sky, where nothing else is painted
    canvas.u[:] = (np.arange(width) * (TILE / width))[None, :].astype(np.int32)
    canvas.v[:] = (np.arange(height) * (TILE / width))[:, None].astype(np.int32)
    _paint_ground(canvas, cam, s)
    _paint_side(canvas, cam, s, 0)
    _paint_side(canvas, cam, s, 1)
    _paint_end_wall(canvas, cam, s)
    canvas.columns = np.arange(width, dtype=np.int32)[None, :] * 3
    canvas.rows = np.arange(height, dtype=np.int32)[:, None] * 3
    for z, parts in s["objects"]:
        for k, (X0, X1, Y0, Y1, shape, label, (tint, texture)) in enumerate(parts):
            part = (X0, X1, Y0, Y1, shape, label, canvas.add_material(tint, texture))
            paint_part(canvas, cam, z - 1e-3 * k, part)  # later parts of one object lie in front
    return _shade(canvas, cam, s), canvas.label


def _shade(canvas, cam, s):
    """Texture, tint, light, haze, blur and noise -> uint8 (H, W, 3)."""
    stack = texture_stack().reshape(-1)
    offsets = np.asarray(canvas.textures, np.int32) * (TILE * TILE)  # where each material's texture starts
    tints = np.asarray(canvas.tints, np.float32)
    material = canvas.material.astype(np.intp)
    index = np.take(offsets, material)
    index += (canvas.v & (TILE - 1)) * TILE
    index += canvas.u & (TILE - 1)
    light = np.take(stack, index)                                                # (H, W) texture brightness
    light *= s["light"]
    below = cam.dy[:, 0] > 0
    if np.any(below):  # shadows fall on the ground only: across road and sidewalk alike
        ground = (canvas.label <= SIDEWALK) | (canvas.label == TERRAIN)
        z = np.where(below, cam.f * cam.cam_h / np.maximum(cam.dy[:, 0], 1e-3), np.inf)[:, None]  # (H, 1)
        band = np.zeros(z.shape, bool)
        for start, width in zip(s["shadow_bands"], s["band_widths"]):
            band |= (z >= start) & (z < start + width)
        shadow = band if s["shadow_edge"] is None else band | (cam.dx * z / cam.f - s["road_center"] < s["shadow_edge"])
        light[shadow & ground] *= s["shadow_strength"]
    sky_rows = 1.05 - 0.25 * (np.arange(light.shape[0], dtype=np.float32) / light.shape[0])[:, None]
    sky = material == 0
    light[sky] *= np.broadcast_to(sky_rows, light.shape)[sky]
    # Haze blends towards the sky colour with distance: rgb = tint * light * (1 - haze) + sky * haze.
    # Folding it into two (H, W) factors keeps the (H, W, 3) passes few (this function dominates at 512x1024).
    with np.errstate(over="ignore"):
        clear = np.exp(canvas.depth * np.float32(-1.0 / s["haze"]))     # 1 near, 0 far (and in the sky)
    clear[sky] = 1.0
    light *= clear
    np.subtract(1.0, clear, out=clear)                                   # now the haze amount
    rgb = np.take(tints * 255.0, material, axis=0)                       # (H, W, 3), 0..255
    rgb *= light[..., None]
    rgb += clear[..., None] * (np.asarray(s["sky_mat"][0], np.float32) * 255.0)
    np.clip(rgb, 0, 255, out=rgb)
    image = rgb.astype(np.uint8)
    if s["blur"]:  # optics first (blur in C via Pillow; radius scaled so every resolution looks alike) ...
        radius = 0.45 * s["blur"] * canvas.width / 256
        image = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))
    noisy = np.float32(s["noise"]) * _noise_window(canvas.height, canvas.width, s["noise_offset"])
    noisy += image  # ... then sensor noise
    np.clip(noisy, 0, 255, out=noisy)
    return noisy.astype(np.uint8)


_NOISE = {}


def _noise_window(height, width, offset):
    """Unit Gaussian sensor noise (H, W, 3): a window of one fixed, pre-computed pattern (fast, deterministic)."""
    if (height, width) not in _NOISE:
        _NOISE[(height, width)] = np.random.default_rng(7).standard_normal((height + 64, width + 64, 3)).astype(np.float32)
    r, c = int(offset[0] * 64), int(offset[1] * 64)
    return _NOISE[(height, width)][r:r + height, c:c + width]


def render_scene(rng, size=(128, 256)):
    """A fresh random scene: rng (numpy Generator), size (H, W) -> (image uint8 (H, W, 3), label uint8 (H, W))."""
    return render_street(draw_street(rng), size)
