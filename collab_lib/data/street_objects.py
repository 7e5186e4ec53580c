"""Billboard objects of a synthetic street scene: poles, signs, people, cars, trees, clutter.

Each object is a list of flat parts standing upright at one depth z, facing
the camera: (X0, X1, Y0, Y1, shape, label, material) in metres (X lateral,
Y height above the ground). Parts are painted far to near (painter's order)
and z-tested against the street, so a fence hides the tree behind it.
"""

import math

import numpy as np

from .street_classes import CAR, IGNORE, PERSON, POLE, SIGN, VEGETATION

SIGN_COLOURS = [(0.80, 0.10, 0.10), (0.10, 0.25, 0.75), (0.90, 0.80, 0.10), (0.92, 0.92, 0.92)]


def draw_objects(rng, s):
    """Billboard objects as lists of parts: (z, [(X0, X1, Y0, Y1, shape, label, (tint, texture)), ...])."""
    half, centre = s["road_half"], s["road_center"]
    objects = []
    def sidewalk_x(side, fraction):  # lateral position on sidewalk `side` (0 left, 1 right), 0 = curb
        sign = -1.0 if side == 0 else 1.0
        return centre + sign * (half + fraction * s["sidewalk"][side])
    metal = (np.array((0.45, 0.45, 0.47)) * rng.uniform(0.7, 1.3), "flat")
    for _ in range(int(rng.integers(3, 9))):  # poles, some carrying a sign
        z, X = rng.uniform(3.0, 80.0), sidewalk_x(int(rng.integers(2)), rng.uniform(0.05, 0.3))
        height, width = rng.uniform(4.0, 8.0), rng.uniform(0.1, 0.2)
        parts = [(X - width / 2, X + width / 2, 0.0, height, "rect", POLE, metal)]
        if rng.uniform() < 0.6:
            size, at = rng.uniform(0.5, 0.9), rng.uniform(2.2, height - 0.5)
            shape = ["rect", "ellipse", "triangle"][int(rng.integers(3))]
            colour = (np.array(SIGN_COLOURS[int(rng.integers(len(SIGN_COLOURS)))]), "flat")
            parts.append((X - size / 2, X + size / 2, at, at + size, shape, SIGN, colour))
        objects.append((z, parts))
    for _ in range(int(rng.integers(1, 8))):  # people, mostly on the sidewalks, some crossing
        z, h = rng.uniform(3.0, 70.0), rng.uniform(1.5, 1.95)
        X = (sidewalk_x(int(rng.integers(2)), rng.uniform(0.2, 0.9)) if rng.uniform() < 0.85
             else centre + rng.uniform(-half, half))
        top = (rng.uniform(0.05, 0.95, 3), "plaster")
        legs = (rng.uniform(0.05, 0.6, 3), "plaster")
        skin = (np.array((0.85, 0.65, 0.5)) * rng.uniform(0.5, 1.1), "flat")
        parts = [(X - 0.22, X - 0.03, 0.0, 0.48 * h, "rect", PERSON, legs),
                 (X + 0.03, X + 0.22, 0.0, 0.48 * h, "rect", PERSON, legs),
                 (X - 0.24, X + 0.24, 0.46 * h, 0.84 * h, "ellipse", PERSON, top),
                 (X - 0.11, X + 0.11, 0.83 * h, h, "ellipse", PERSON, skin)]
        objects.append((z, parts))
    for _ in range(int(rng.integers(1, 6))):  # cars seen from behind: in a lane or parked at the curb
        z = rng.uniform(4.0, 80.0)
        X = centre + (rng.uniform(-0.8, 0.8) * half if rng.uniform() < 0.7 else
                      (-1 if rng.uniform() < 0.5 else 1) * (half - 1.1))
        w, h = rng.uniform(1.7, 2.0), rng.uniform(1.4, 1.7)
        body = (rng.uniform(0.05, 0.9, 3) * rng.uniform(0.5, 1.0), "plaster")
        glass, tyre = ((0.12, 0.14, 0.18), "flat"), ((0.06, 0.06, 0.06), "flat")
        parts = [(X - w / 2 + 0.1, X - w / 2 + 0.45, 0.0, 0.4, "rect", CAR, tyre),
                 (X + w / 2 - 0.45, X + w / 2 - 0.1, 0.0, 0.4, "rect", CAR, tyre),
                 (X - w / 2, X + w / 2, 0.25, 0.62 * h, "rect", CAR, body),
                 (X - w / 2 + 0.12, X + w / 2 - 0.12, 0.6 * h, h, "rect", CAR, body),
                 (X - w / 2 + 0.25, X + w / 2 - 0.25, 0.66 * h, 0.94 * h, "rect", CAR, glass)]
        objects.append((z, parts))
    for _ in range(int(rng.integers(0, 6))):  # trees at the sidewalk's outer edge: trunk and crown
        z, side = rng.uniform(3.0, 60.0), int(rng.integers(2))
        X = sidewalk_x(side, rng.uniform(0.75, 1.1))
        trunk, radius = rng.uniform(2.0, 4.0), rng.uniform(1.2, 3.0)
        bark = (np.array((0.35, 0.27, 0.2)) * rng.uniform(0.7, 1.2), "gravel")
        parts = [(X - 0.16, X + 0.16, 0.0, trunk, "rect", VEGETATION, bark),
                 (X - radius, X + radius, trunk - 0.3, trunk + 1.6 * radius, "ellipse", VEGETATION,
                  s["vegetation_mat"])]
        objects.append((z, parts))
    for _ in range(int(rng.choice([0, 0, 1, 2]))):  # unlabelled clutter (bins, boxes): ignore, not a class
        z, size = rng.uniform(3.0, 30.0), rng.uniform(0.4, 1.0)
        X = sidewalk_x(int(rng.integers(2)), rng.uniform(0.3, 0.9))
        stuff = (rng.uniform(0.1, 0.9, 3), "gravel")
        objects.append((z, [(X - size / 2, X + size / 2, 0.0, size, "rect", IGNORE, stuff)]))
    objects = [(float(z), [tuple(float(p) for p in part[:4]) + part[4:] for part in parts]) for z, parts in objects]
    objects.sort(key=lambda item: -item[0])  # painter's order: far to near
    return objects


def paint_part(canvas, cam, z, part):
    """One flat part of a billboard object at depth z, world box (X0..X1, Y0..Y1), at least 1 pixel wide."""
    X0, X1, Y0, Y1, shape, label, material = part
    scale = cam.f / z  # pixels per metre at this depth
    x0, x1 = cam.x_v + X0 * scale, cam.x_v + X1 * scale
    y0, y1 = cam.y_h + (cam.cam_h - Y1) * scale, cam.y_h + (cam.cam_h - Y0) * scale  # screen y grows down
    c0, c1 = math.ceil(x0 - 0.5), math.floor(x1 - 0.5) + 1  # pixel centres inside [x0, x1]
    r0, r1 = math.ceil(y0 - 0.5), math.floor(y1 - 0.5) + 1
    if c1 <= c0:  # thinner than a pixel: keep the nearest column, thin structures must not vanish
        c0 = math.floor(0.5 * (x0 + x1))
        c1 = c0 + 1
    if r1 <= r0:
        r0 = math.floor(0.5 * (y0 + y1))
        r1 = r0 + 1
    c0, c1, r0, r1 = max(c0, 0), min(c1, canvas.width), max(r0, 0), min(r1, canvas.height)
    if c1 <= c0 or r1 <= r0:
        return
    visible = True
    if shape != "rect" and (c1 - c0 > 1 or r1 - r0 > 1):  # a shape within one pixel still covers it
        xs = (np.arange(c0, c1, dtype=np.float32)[None, :] + (0.5 - x0)) / (x1 - x0)  # 0..1 across
        ys = (np.arange(r0, r1, dtype=np.float32)[:, None] + (0.5 - y0)) / (y1 - y0)  # 0..1 down
        if shape == "ellipse":
            visible = (2 * xs - 1) ** 2 + (2 * ys - 1) ** 2 <= 1.0
        else:  # triangle, apex up
            visible = ys >= np.abs(2 * xs - 1)
    u = canvas.columns[:, c0:c1]  # screen-space texture for objects
    v = canvas.rows[r0:r1]
    canvas.paint(slice(r0, r1), slice(c0, c1), visible, z, label, material, u, v)
