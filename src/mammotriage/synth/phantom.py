"""Synthetic breast phantoms, rendered: one view of a sampled breast as pixels.

:func:`render_view` projects a :class:`~mammotriage.synth.anatomy.Breast` (sampled once per
breast by :func:`~mammotriage.synth.anatomy.sample_breast`) into one view: outline, tissue
texture, skin, nipple, pectoral muscle, vessels, lymph nodes, benign masses and the lesion.
Pixels are float32 in [0, 1] with dense tissue bright, computed on a ~0.2 mm grid and
upsampled, with only the things that need it (calcifications, noise) added at full
resolution: a full-size image costs a fraction of a second.

Geometry is worked out in the canonical orientation (chest wall on the left, nipple pointing
right, lateral/superior side up) in millimetres from the top-left corner; the image is
mirrored at the end when the chest wall is wanted on the right.

Fibroglandular texture is a Gaussian random field with a 1/f^beta power spectrum, beta = 3,
the exponent measured on real mammograms (Burgess et al., Med Phys 2001; drawn in
:mod:`mammotriage.synth.texture`), thresholded so that the dense fraction matches the BI-RADS
density category.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mammotriage.dicom.model import ViewPosition
from mammotriage.synth import lesions as ls
from mammotriage.synth.anatomy import Breast, ChestWall, ViewGeometry, display_chest_wall
from mammotriage.synth.lesions import Box, LesionType
from mammotriage.synth.texture import (
    bilinear_sample,
    power_law_field,
    smoothstep,
    texture_fields,
    upsample,
)

#: Pixel spacing of the grid the tissue is computed on: finer than the structures it holds
#: (vessels, spicules, skin line) and coarse enough to keep a full-size image fast.
WORK_SPACING_MM = 0.2


@dataclass(frozen=True, eq=False)
class RenderedView:
    """Pixels of one view in stored orientation, with the truth a reader should recover.

    ``box`` bounds the lesion in stored pixel coordinates; ``nipple_xy`` is the nipple's
    pixel position; ``breast_mask`` marks breast (skin included) against air.
    """

    pixels: np.ndarray
    box: Box | None
    chest_wall: ChestWall
    nipple_xy: tuple[float, float]
    breast_mask: np.ndarray


FAT = 0.28
GLANDULAR = 0.68
AIR = 0.02


def render_view(
    rng: np.random.Generator,
    breast: Breast,
    view: ViewPosition,
    shape: tuple[int, int],
    spacing_mm: float,
    *,
    chest_wall: ChestWall | None = None,
) -> RenderedView:
    """Pixels of one view of ``breast``: float32 in [0, 1], dense tissue bright.

    ``chest_wall`` defaults to the hanging convention for the breast's laterality; the
    returned box and nipple position are in the pixels as returned (stored orientation).
    The lesion, if any, is drawn with randomness of its own, so the same ``rng`` state
    renders the same image with and without it except over the lesion.

    Raises
    ------
    ValueError
        If ``view`` is not CC or MLO, or ``shape`` is not portrait.
    """
    geometry = breast.geometry(view)
    rows, columns = shape
    if rows < columns or columns < 16:
        raise ValueError(f"shape must be portrait (rows >= columns >= 16), got {shape!r}")
    if chest_wall is None:
        chest_wall = display_chest_wall(breast.laterality)
    tissue_rng, finding_rng, noise_rng = rng.spawn(3)

    factor = max(1, int(WORK_SPACING_MM / spacing_mm + 0.7))
    ws = spacing_mm * factor
    wh, ww = -(-rows // factor), -(-columns // factor)
    xs = ((np.arange(ww, dtype=np.float32) + 0.5) * ws)[None, :]
    ys = ((np.arange(wh, dtype=np.float32) + 0.5) * ws)[:, None]
    q, dist = geometry.normalized_radius(xs, ys)
    pect_x = geometry.pectoral.edge_x(ys) if geometry.pectoral is not None else np.zeros_like(ys)
    image, texture = _tissue(tissue_rng, breast, geometry, xs, ys, q, dist, pect_x, ws)

    _draw_benign(finding_rng, image, breast, view, ws)
    box_mm = None
    if breast.lesion is not None:
        lx, ly = geometry.point(breast.lesion.position, view)
        box_mm = ls.draw_lesion(image, breast.lesion, lx, ly, ws)
    mask = _finish(image, texture, breast, geometry, xs, ys, dist, pect_x, ws)

    mirror = chest_wall is ChestWall.RIGHT
    if mirror:
        image, mask = image[:, ::-1], mask[:, ::-1]
    full = upsample(image, factor, shape, from_right=mirror)
    mask = mask > 0.5
    if factor > 1:
        mask = np.repeat(np.repeat(mask, factor, axis=0), factor, axis=1)
    breast_mask = mask[:rows, mask.shape[1] - columns :] if mirror else mask[:rows, :columns]

    def to_stored_x(x_mm: float) -> float:
        x = x_mm / spacing_mm - 0.5
        return columns - 1 - x if mirror else x

    for x_mm, y_mm, diameter, peak, hollow in _calcifications(finding_rng, breast, geometry, view):
        ls.add_stamp(
            full,
            ls.dot_stamp(
                to_stored_x(x_mm), y_mm / spacing_mm - 0.5, diameter / spacing_mm, peak, hollow
            ),
        )
    noise = noise_rng.standard_normal(shape, dtype=np.float32)
    noise *= 0.004 + 0.012 * full
    full += noise
    np.clip(full, 0, 1, out=full)

    box = None
    if box_mm is not None:
        box = Box(
            max(int(math.floor(box_mm[0] / spacing_mm)), 0),
            max(int(math.floor(box_mm[1] / spacing_mm)), 0),
            min(int(math.ceil(box_mm[2] / spacing_mm)), columns),
            min(int(math.ceil(box_mm[3] / spacing_mm)), rows),
        )
        box = box.mirrored(columns) if mirror else box
    nipple = (to_stored_x(geometry.nipple_depth_mm), geometry.nipple_y_mm / spacing_mm - 0.5)
    pixels = np.ascontiguousarray(full, dtype=np.float32)
    return RenderedView(pixels, box, chest_wall, nipple, np.ascontiguousarray(breast_mask))


def _tissue(
    rng: np.random.Generator,
    breast: Breast,
    g: ViewGeometry,
    xs: np.ndarray,
    ys: np.ndarray,
    q: np.ndarray,
    dist: np.ndarray,
    pect_x: np.ndarray,
    ws: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Fat and fibroglandular tissue on the work grid (before skin, muscle and findings).

    Dense tissue lies behind the nipple and toward the upper-outer side, spares a layer of
    subcutaneous fat under the skin and of retroglandular fat in front of the chest wall,
    and is streaked along ducts that converge on the nipple.
    """
    shape = dist.shape
    iso, mid, lobules = texture_fields(rng, shape, ws)
    envelope = smoothstep((dist - breast.subcutaneous_fat_mm) * 0.1)
    envelope *= 0.35 + 0.65 * smoothstep((0.95 - q) / 0.45)
    # The retroglandular fat layer has an irregular front, not a line parallel to the wall,
    # and is thinnest where tissue is densest.
    retro = breast.retroglandular_fat_mm * np.clip(1 - 0.9 * iso, 0.1, 3)
    retro += pect_x
    envelope *= smoothstep((xs - retro) / 8.0)
    b = g.half_height_up_mm + g.half_height_down_mm
    envelope *= 0.6 + 0.4 * np.exp(-(((ys - g.nipple_y_mm + 0.1 * b) / (0.4 * b)) ** 2))
    polar = power_law_field(rng, (96, 384), 3.0, stretch=6.0)
    dx, dy = g.nipple_depth_mm - xs, ys - g.nipple_y_mm
    r = np.sqrt(dx**2 + dy**2)
    phi = np.arctan2(dy, dx)
    streak = bilinear_sample(
        polar, r * (95.0 / (1.3 * g.nipple_depth_mm + 1)), (phi + np.pi) * (383 / (2 * np.pi))
    )
    envelope -= 1
    envelope *= 2.5
    score = envelope
    score += 0.75 * iso
    score += 0.55 * streak
    sample = score[dist > 0][::7]
    threshold = float(np.quantile(sample, 1 - breast.dense_fraction)) if sample.size else 0.0
    score -= threshold
    score *= -1 / 0.45
    dense = 1 / (1 + np.exp(score))
    # Fat lobules: soft rounded lucencies of a few millimetres within dense tissue, their
    # borders (the field's zero crossings) the ligament network that shows in fat.
    dense *= 1 - 0.35 * smoothstep((lobules - 0.8) / 2.0)
    network = np.exp(-((lobules * 5) ** 2))
    network *= 1 - dense
    network *= smoothstep(dist / 6.0)
    image = (GLANDULAR - FAT + 0.03 * iso + 0.06 * mid) * dense
    image += FAT
    image += 0.025 * network
    image += 0.012 * lobules
    return image.astype(np.float32), mid


def _finish(
    image: np.ndarray,
    texture: np.ndarray,
    breast: Breast,
    g: ViewGeometry,
    xs: np.ndarray,
    ys: np.ndarray,
    dist: np.ndarray,
    pect_x: np.ndarray,
    ws: float,
) -> np.ndarray:
    """Add pectoral muscle, thinning toward the edge, skin line, nipple and air, in place.
    Returns the breast mask (1 inside, anti-aliased edge)."""
    if g.pectoral is not None:
        muscle = smoothstep((pect_x - xs) / 2.0 + 0.5)
        depth = np.clip(1 - xs / np.maximum(pect_x, 1.0), 0, 1)
        level = 0.48 + 0.1 * depth + 0.06 * np.clip(1 - ys / g.pectoral.height_mm, 0, 1)
        level = level + 0.035 * texture
        image[:] = image * (1 - muscle) + muscle * np.maximum(image, level)
    image *= 1 - 0.45 * np.exp(-np.maximum(dist, 0) / 6.0)
    s = breast.skin_mm
    image += 0.12 * np.exp(-(((dist - 0.5 * s) / (0.6 * s)) ** 2))
    mask = np.clip(dist / ws + 0.5, 0, 1)
    rn = breast.nipple_radius_mm
    dn = np.hypot(xs - g.nipple_depth_mm, ys - g.nipple_y_mm)
    nipple = np.clip((rn - dn) / ws + 0.5, 0, 1) * (xs > g.nipple_depth_mm - rn)
    both = np.maximum(mask, nipple)
    image *= mask
    image += 0.3 * np.clip(nipple - mask, 0, 1) + AIR * (1 - both)
    return both.astype(np.float32)


def _draw_benign(
    rng: np.random.Generator, image: np.ndarray, breast: Breast, view: ViewPosition, ws: float
) -> None:
    """Benign masses, vessels and (MLO) axillary lymph nodes on the work grid."""
    g = breast.geometry(view)
    for mass in breast.benign_masses:
        mx, my = g.point(mass.position, view)
        ls.add_stamp(image, ls.benign_mass_stamp(mass, mx / ws - 0.5, my / ws - 0.5, ws))
    vessels = []
    for _ in range(int(rng.integers(2, 6))):
        x0 = float(rng.uniform(2, 0.35 * g.nipple_depth_mm))
        y0 = g.nipple_y_mm + float(rng.uniform(-0.7, 0.7)) * (
            g.half_height_up_mm if rng.uniform() < 0.5 else g.half_height_down_mm
        )
        heading = math.atan2(g.nipple_y_mm - y0, g.nipple_depth_mm - x0) + rng.normal(0, 0.25)
        length = float(rng.uniform(0.5, 1.0)) * math.hypot(
            g.nipple_depth_mm - x0, g.nipple_y_mm - y0
        )
        pts = ls.vessel_polyline(rng, (x0 / ws - 0.5, y0 / ws - 0.5), heading, length / ws)
        taper = np.sin(np.linspace(0.15, 1, len(pts)) * np.pi / 2) * np.linspace(1, 0.3, len(pts))
        vessels.append((pts, float(rng.uniform(0.03, 0.07)) * taper))
    stamp = ls.lines_stamp(vessels, float(rng.uniform(0.35, 0.6)) / ws)
    if stamp is not None:
        ls.add_stamp(image, stamp)
    if g.pectoral is not None:
        for _ in range(int(rng.integers(0, 3))):
            y = float(rng.uniform(0.1, 0.55)) * g.pectoral.height_mm
            x = float(g.pectoral.edge_x(np.array([y]))[0]) + float(rng.uniform(5, 15))
            if g.contains(x, y, 5.0):
                for s in ls.lymph_node_stamps(rng, x / ws - 0.5, y / ws - 0.5, ws):
                    ls.add_stamp(image, s)


def _calcifications(
    rng: np.random.Generator, breast: Breast, g: ViewGeometry, view: ViewPosition
) -> list[tuple[float, float, float, float, bool]]:
    """Dots drawn at full resolution, as (x_mm, y_mm, diameter_mm, peak, hollow): the
    lesion's cluster and a few benign scattered calcifications (larger, round, sometimes
    with a lucent centre, far apart)."""
    dots = []
    lesion = breast.lesion
    if lesion is not None and lesion.lesion_type is LesionType.CALCIFICATION_CLUSTER:
        lx, ly = g.point(lesion.position, view)
        for dx, dy, diameter, peak in ls.calcification_layout(lesion):
            dots.append((lx + dx, ly + dy, diameter, peak, False))
    for _ in range(int(rng.choice([0, 0, 1, 2, 3, 5, 8]))):
        x = float(rng.uniform(0, g.nipple_depth_mm))
        y = float(
            rng.uniform(g.nipple_y_mm - g.half_height_up_mm, g.nipple_y_mm + g.half_height_down_mm)
        )
        diameter, peak = float(rng.uniform(0.7, 2.2)), float(rng.uniform(0.2, 0.45))
        hollow = bool(rng.uniform() < 0.3)
        if g.contains(x, y, 3.0):
            dots.append((x, y, diameter, peak, hollow))
    return dots
