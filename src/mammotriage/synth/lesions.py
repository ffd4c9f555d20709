"""Lesions and benign findings of the synthetic phantoms, drawn as small additive stamps.

Everything here is pure array math in pixel units: a finding is described once, in
millimetres and relative to the nipple (:class:`BreastPosition`), and each view turns that
into pixels. Shape details come from the finding's own ``shape_seed`` so that the same mass
has the same outline, and the same calcification cluster the same layout, in the CC and the
MLO view of its breast: radiologists confirm a finding by seeing it twice, and so should a
model trained on these images.

Intensities are in "dense is bright" units where air is ~0, fat ~0.3 and fibroglandular
tissue ~0.75; a stamp is added to that image, as attenuation adds along the X-ray path.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np


class LesionType(str, enum.Enum):
    """Kind of cancer lesion, named as in the truth file (and as in CBIS-DDSM's categories)."""

    CIRCUMSCRIBED_MASS = "circumscribed_mass"
    SPICULATED_MASS = "spiculated_mass"
    CALCIFICATION_CLUSTER = "calcification_cluster"
    ARCHITECTURAL_DISTORTION = "architectural_distortion"


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in stored pixel coordinates, ``pixels[y0:y1, x0:x1]`` (end exclusive)."""

    x0: int
    y0: int
    x1: int
    y1: int

    def mirrored(self, columns: int) -> Box:
        """The same box after flipping an image of ``columns`` columns left to right."""
        return Box(columns - self.x1, self.y0, columns - self.x0, self.y1)

    def __str__(self) -> str:
        return f"{self.x0},{self.y0},{self.x1},{self.y1}"

    @classmethod
    def parse(cls, text: str) -> Box:
        x0, y0, x1, y1 = (int(v) for v in text.split(","))
        return cls(x0, y0, x1, y1)


@dataclass(frozen=True)
class BreastPosition:
    """Where a finding sits in a breast, in the coordinates radiologists use between views.

    The distance from the nipple is the same in CC and MLO (that is how a finding seen in
    one view is looked for in the other); the angle from the posterior nipple line differs
    per view: positive is lateral in CC and superior in MLO.
    """

    nipple_distance_mm: float
    cc_angle: float
    mlo_angle: float


@dataclass(frozen=True)
class Lesion:
    """One cancer lesion with its ground truth.

    ``subtlety`` follows CBIS-DDSM: 1 is the most subtle (small, faint), 5 the most obvious.
    """

    lesion_type: LesionType
    subtlety: int
    position: BreastPosition
    size_mm: float
    contrast: float
    shape_seed: int


@dataclass(frozen=True)
class BenignMass:
    """A well-circumscribed, low-contrast round mass (cyst, fibroadenoma): a distractor."""

    position: BreastPosition
    size_mm: float
    contrast: float
    shape_seed: int


@dataclass(frozen=True)
class Stamp:
    """Values to add to an image at (``top``, ``left``); may hang over the image border."""

    values: np.ndarray
    top: int
    left: int


def add_stamp(image: np.ndarray, stamp: Stamp) -> None:
    """Add ``stamp`` into ``image`` in place, clipped to the image border."""
    h, w = stamp.values.shape
    y0, x0 = max(stamp.top, 0), max(stamp.left, 0)
    y1, x1 = min(stamp.top + h, image.shape[0]), min(stamp.left + w, image.shape[1])
    if y0 >= y1 or x0 >= x1:
        return
    image[y0:y1, x0:x1] += stamp.values[
        y0 - stamp.top : y1 - stamp.top, x0 - stamp.left : x1 - stamp.left
    ]


def sample_lesion(
    rng: np.random.Generator, lesion_type: LesionType, subtlety: int, position: BreastPosition
) -> Lesion:
    """Size and contrast of a lesion of the given type and subtlety.

    Subtlety scales both: a subtlety-1 mass is ~7 mm and barely denser than glandular
    tissue (hard at screening resolution), a subtlety-5 one ~20 mm and plainly visible.

    Raises
    ------
    ValueError
        If ``subtlety`` is not 1-5.
    """
    if subtlety not in (1, 2, 3, 4, 5):
        raise ValueError(f"subtlety must be 1-5, got {subtlety!r}")
    t = (subtlety - 1) / 4.0
    jitter = float(rng.uniform(0.85, 1.15))
    if lesion_type is LesionType.CIRCUMSCRIBED_MASS:
        size, contrast = rng.uniform(6, 9) + t * rng.uniform(6, 14), 0.10 + 0.40 * t**0.6
    elif lesion_type is LesionType.SPICULATED_MASS:
        size, contrast = rng.uniform(5, 8) + t * rng.uniform(4, 10), 0.14 + 0.40 * t**0.6
    elif lesion_type is LesionType.CALCIFICATION_CLUSTER:
        size, contrast = rng.uniform(4, 7) + t * rng.uniform(2, 6), 0.25 + 0.6 * t**0.6
    else:
        size, contrast = rng.uniform(14, 20) + t * rng.uniform(4, 16), 0.12 + 0.35 * t**0.6
    return Lesion(
        lesion_type=lesion_type,
        subtlety=subtlety,
        position=position,
        size_mm=float(size),
        contrast=float(contrast * jitter),
        shape_seed=int(rng.integers(2**31)),
    )


# --- low-level drawing ------------------------------------------------------------------


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with edge padding (sigma in pixels)."""
    if sigma <= 0:
        return image
    radius = max(1, int(math.ceil(3 * sigma)))
    taps = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    out = image.astype(np.float32, copy=True)
    for axis in (0, 1):
        n = out.shape[axis]
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="edge")
        acc = np.zeros_like(out)
        for i, weight in enumerate(kernel):
            acc += weight * (padded[i : i + n] if axis == 0 else padded[:, i : i + n])
        out = acc
    return out


def lines_stamp(polylines: list[tuple[np.ndarray, np.ndarray]], sigma_px: float) -> Stamp | None:
    """Thin curvilinear structures (spicules, vessels, distortion lines) as one stamp.

    Each polyline is ``(points, peak)`` with points ``(n, 2)`` as (x, y) pixels and the wanted
    peak intensity at each point. Points are resampled densely and deposited bilinearly with
    weight proportional to length, then blurred: the line's cross-section is Gaussian with
    the given peak whatever its direction, which nearest-pixel drawing would not give.
    """
    sigma = max(float(sigma_px), 0.6)
    pts_all, amp_all = [], []
    for points, peak in polylines:
        if len(points) < 2:
            continue
        seg = np.hypot(*np.diff(points, axis=0).T)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        if cum[-1] <= 0:
            continue
        step = 0.5
        s = np.arange(0.0, cum[-1], step)
        pts_all.append(
            np.stack([np.interp(s, cum, points[:, 0]), np.interp(s, cum, points[:, 1])], axis=1)
        )
        amp_all.append(np.interp(s, cum, peak) * step * math.sqrt(2 * math.pi) * sigma)
    if not pts_all:
        return None
    pts = np.concatenate(pts_all)
    amps = np.concatenate(amp_all)
    margin = int(math.ceil(3 * sigma)) + 2
    left = int(math.floor(pts[:, 0].min())) - margin
    top = int(math.floor(pts[:, 1].min())) - margin
    w = int(math.ceil(pts[:, 0].max())) + margin + 1 - left
    h = int(math.ceil(pts[:, 1].max())) + margin + 1 - top
    x, y = pts[:, 0] - left, pts[:, 1] - top
    ix, iy = np.floor(x).astype(np.intp), np.floor(y).astype(np.intp)
    fx, fy = x - ix, y - iy
    canvas = np.zeros(h * w, dtype=np.float64)
    for dy, dx, wgt in (
        (0, 0, (1 - fx) * (1 - fy)),
        (0, 1, fx * (1 - fy)),
        (1, 0, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        canvas += np.bincount((iy + dy) * w + ix + dx, weights=amps * wgt, minlength=h * w)
    return Stamp(gaussian_blur(canvas.reshape(h, w).astype(np.float32), sigma), top, left)


def dot_stamp(x: float, y: float, diameter_px: float, peak: float, hollow: bool = False) -> Stamp:
    """A calcification: a Gaussian dot (or a ring, for eggshell calcifications).

    Dots smaller than a pixel are drawn one pixel wide with the peak lowered so that their
    integrated brightness stays that of the true size, as a detector pixel averages them.
    """
    sigma_true = diameter_px / 2.355
    sigma = max(sigma_true, 0.5)
    peak = peak * min(1.0, (sigma_true / sigma) ** 2)
    r = int(math.ceil(3 * sigma)) + 1
    left, top = int(math.floor(x)) - r, int(math.floor(y)) - r
    gx = np.arange(2 * r + 2, dtype=np.float32) + left - x
    gy = np.arange(2 * r + 2, dtype=np.float32) + top - y
    d2 = gy[:, None] ** 2 + gx[None, :] ** 2
    values = np.exp(-0.5 * d2 / sigma**2)
    if hollow:
        values = values - 0.8 * np.exp(-0.5 * d2 / (0.6 * sigma) ** 2)
    return Stamp((peak * values).astype(np.float32), top, left)


def _local_grid(x: float, y: float, extent: float) -> tuple[np.ndarray, np.ndarray, int, int]:
    r = int(math.ceil(extent)) + 2
    left, top = int(math.floor(x)) - r, int(math.floor(y)) - r
    dx = np.arange(2 * r + 2, dtype=np.float32) + left - x
    dy = np.arange(2 * r + 2, dtype=np.float32) + top - y
    return dx[None, :], dy[:, None], top, left


def mass_stamp(
    x: float,
    y: float,
    radius_px: float,
    contrast: float,
    shape_rng: np.random.Generator,
    irregularity: float,
    margin_px: float,
) -> Stamp:
    """A mass: an oval whose outline wobbles by ``irregularity`` and whose margin is
    ``margin_px`` wide (sharp for benign and circumscribed, ill-defined for malignant cores).

    The profile is brightest in the middle, like the projection of a solid lump, and keeps a
    plateau near the edge so that the outline reads as a mass and not as a blur.
    """
    elongation = float(shape_rng.uniform(0.0, 0.3))
    angle = float(shape_rng.uniform(0, math.pi))
    ks = np.arange(2, 9)
    amps = irregularity * shape_rng.uniform(0.3, 1.0, ks.size) / ks
    phases = shape_rng.uniform(0, 2 * math.pi, ks.size)
    extent = radius_px * (1 + elongation) * (1 + amps.sum()) + 3 * margin_px
    dx, dy, top, left = _local_grid(x, y, extent)
    u = dx * math.cos(angle) + dy * math.sin(angle)
    v = -dx * math.sin(angle) + dy * math.cos(angle)
    u = u / (1 + elongation)
    r = np.hypot(u, v)
    theta = np.arctan2(v, u)
    r_edge = radius_px * (
        1 + (amps[:, None, None] * np.cos(ks[:, None, None] * theta + phases[:, None, None])).sum(0)
    )
    inside = 0.5 * (1 - np.tanh((r - r_edge) / max(margin_px, 0.5)))
    dome = np.sqrt(np.clip(1 - (r / np.maximum(r_edge, 1e-3)) ** 2, 0, 1))
    return Stamp((contrast * inside * (0.5 + 0.5 * dome)).astype(np.float32), top, left)


# --- cancer lesions ---------------------------------------------------------------------


def calcification_layout(lesion: Lesion) -> np.ndarray:
    """Dots of a calcification cluster: ``(n, 4)`` rows of (dx_mm, dy_mm, diameter_mm, peak).

    Pleomorphic dots, 8-30 of them, within a few millimetres; more and larger dots for
    more obvious clusters (obvious ones stay visible as a cluster at screening-model
    resolution, ~0.7 mm per pixel; the most subtle do not). Derived from ``shape_seed`` so
    that both views agree.
    """
    rng = np.random.default_rng(lesion.shape_seed)
    t = (lesion.subtlety - 1) / 4.0
    n = int(rng.integers(8, 14 + int(16 * t) + 1))
    radius = lesion.size_mm / 2
    # Clustered around a few seeds, as calcifications line up along a duct segment.
    angle = rng.uniform(0, math.pi)
    along = rng.uniform(-1, 1, n) * radius
    across = rng.normal(0, 0.35, n) * radius
    dx = along * math.cos(angle) - across * math.sin(angle)
    dy = along * math.sin(angle) + across * math.cos(angle)
    diameter = rng.uniform(0.3, 0.5 + 0.6 * t, n)
    peak = lesion.contrast * rng.uniform(0.6, 1.2, n)
    return np.stack([dx, dy, diameter, peak], axis=1)


def spicule_lines(
    x: float, y: float, core_radius_px: float, lesion: Lesion
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Radiating spicules of a spiculated mass: thin, slightly curved, fading outwards."""
    rng = np.random.default_rng(lesion.shape_seed + 1)
    n = int(rng.integers(14, 30))
    angles = rng.uniform(0, 2 * math.pi, n)
    lines = []
    for a in angles:
        length = core_radius_px * rng.uniform(0.8, 2.5)
        bend = rng.normal(0, 0.2)
        s = np.linspace(0, 1, 24)
        rad = core_radius_px * 0.8 + s * length
        ang = a + bend * s**2
        pts = np.stack([x + rad * np.cos(ang), y + rad * np.sin(ang)], axis=1)
        peak = lesion.contrast * rng.uniform(0.25, 0.5) * (1 - s) ** 0.7
        lines.append((pts, peak))
    return lines


def distortion_lines(
    x: float, y: float, radius_px: float, lesion: Lesion
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Lines of an architectural distortion: thin, faint, slightly curved strands that
    converge on a point holding no mass, each starting a little away from it."""
    rng = np.random.default_rng(lesion.shape_seed + 2)
    n = int(rng.integers(16, 30))
    lines = []
    for a in rng.uniform(0, 2 * math.pi, n):
        s = np.linspace(0, 1, 20)
        start = rng.uniform(0.05, 0.35)
        rad = radius_px * (start + s * rng.uniform(0.4, 1.0))
        ang = a + rng.normal(0, 0.25) * s**2
        pts = np.stack([x + rad * np.cos(ang), y + rad * np.sin(ang)], axis=1)
        peak = lesion.contrast * rng.uniform(0.3, 0.7) * np.sin(np.pi * s) ** 0.5
        lines.append((pts, peak))
    return lines


def pull_toward(image: np.ndarray, x: float, y: float, radius_px: float, strength: float) -> None:
    """Warp ``image`` in place so tissue within ``radius_px`` is drawn toward (x, y).

    This is what makes a distortion a distortion: the surrounding strands bend toward a
    centre. Each pixel takes its value from farther out along its own radius.
    """
    r = int(math.ceil(radius_px))
    y0, y1 = max(int(y) - r, 0), min(int(y) + r + 1, image.shape[0])
    x0, x1 = max(int(x) - r, 0), min(int(x) + r + 1, image.shape[1])
    if y0 >= y1 or x0 >= x1:
        return
    gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = gx - x, gy - y
    dist = np.hypot(dx, dy)
    gain = 1 + strength * np.clip(1 - dist / radius_px, 0, 1) ** 2
    sx = np.clip(x + dx * gain, 0, image.shape[1] - 1.001)
    sy = np.clip(y + dy * gain, 0, image.shape[0] - 1.001)
    ix, iy = sx.astype(np.intp), sy.astype(np.intp)
    fx, fy = sx - ix, sy - iy
    warped = (
        image[iy, ix] * (1 - fx) * (1 - fy)
        + image[iy, ix + 1] * fx * (1 - fy)
        + image[iy + 1, ix] * (1 - fx) * fy
        + image[iy + 1, ix + 1] * fx * fy
    )
    image[y0:y1, x0:x1] = warped


def _significant_extent(
    stamps: list[tuple[Stamp, float]],
) -> tuple[int, int, int, int]:
    """Pixel bounds (x0, y0, x1, y1, end exclusive) of where each stamp reaches its given
    fraction of its peak: the part of a lesion a radiologist would draw a box around (a
    mass and the stronger half of its spicules, not their faint tips)."""
    x0 = y0 = 2**31
    x1 = y1 = -(2**31)
    for stamp, fraction in stamps:
        values = np.abs(stamp.values)
        rows, cols = np.nonzero(values >= fraction * values.max())
        if rows.size:
            y0, y1 = min(y0, stamp.top + int(rows.min())), max(y1, stamp.top + int(rows.max()) + 1)
            x0, x1 = (
                min(x0, stamp.left + int(cols.min())),
                max(x1, stamp.left + int(cols.max()) + 1),
            )
    return x0, y0, x1, y1


def draw_lesion(
    image: np.ndarray, lesion: Lesion, x_mm: float, y_mm: float, spacing_mm: float
) -> tuple[float, float, float, float]:
    """Draw a lesion centred at (``x_mm``, ``y_mm``) into ``image``, a grid of
    ``spacing_mm`` pixels whose pixel i covers [i, i + 1) * spacing_mm.

    Calcification clusters are drawn at full resolution by the caller (see
    :func:`calcification_layout`); for them this draws nothing. Returns the lesion's box
    (x0, y0, x1, y1) in millimetres, around what the drawing made visible.
    """
    x, y = x_mm / spacing_mm - 0.5, y_mm / spacing_mm - 0.5
    half = lesion.size_mm / 2
    rng = np.random.default_rng(lesion.shape_seed)
    stamps: list[tuple[Stamp, float]] = []
    if lesion.lesion_type is LesionType.CIRCUMSCRIBED_MASS:
        margin = max(0.3 / spacing_mm, 0.5)
        stamps.append(
            (mass_stamp(x, y, half / spacing_mm, lesion.contrast, rng, 0.08, margin), 0.15)
        )
    elif lesion.lesion_type is LesionType.SPICULATED_MASS:
        core, margin = half / spacing_mm, max(0.8 / spacing_mm, 0.7)
        stamps.append((mass_stamp(x, y, core, lesion.contrast, rng, 0.3, margin), 0.15))
        spicules = lines_stamp(spicule_lines(x, y, core, lesion), 0.25 / spacing_mm)
        stamps += [(spicules, 0.5)] if spicules is not None else []
    elif lesion.lesion_type is LesionType.ARCHITECTURAL_DISTORTION:
        radius = half / spacing_mm
        pull_toward(image, x, y, radius * 1.2, strength=0.3 + 0.1 * lesion.subtlety)
        lines = lines_stamp(distortion_lines(x, y, radius, lesion), 0.25 / spacing_mm)
        stamps += [(lines, 0.15)] if lines is not None else []
    else:
        dots = calcification_layout(lesion)
        pad = dots[:, 2].max() / 2 + 0.3
        return (
            float(x_mm + dots[:, 0].min() - pad),
            float(y_mm + dots[:, 1].min() - pad),
            float(x_mm + dots[:, 0].max() + pad),
            float(y_mm + dots[:, 1].max() + pad),
        )
    for stamp, _ in stamps:
        add_stamp(image, stamp)
    x0, y0, x1, y1 = _significant_extent(stamps)
    return (x0 * spacing_mm, y0 * spacing_mm, x1 * spacing_mm, y1 * spacing_mm)


# --- benign findings --------------------------------------------------------------------


def benign_mass_stamp(mass: BenignMass, x: float, y: float, spacing_mm: float) -> Stamp:
    """A benign mass: round or oval, sharply outlined and faint."""
    rng = np.random.default_rng(mass.shape_seed)
    margin = max(0.2 / spacing_mm, 0.5)
    return mass_stamp(x, y, mass.size_mm / 2 / spacing_mm, mass.contrast, rng, 0.03, margin)


def lymph_node_stamps(
    rng: np.random.Generator, x: float, y: float, spacing_mm: float
) -> list[Stamp]:
    """An axillary lymph node: a dense bean with a fatty (dark) hilum notch at one side."""
    size = float(rng.uniform(6, 14)) / spacing_mm
    contrast = float(rng.uniform(0.12, 0.22))
    node = mass_stamp(x, y, size / 2, contrast, rng, 0.02, max(0.3 / spacing_mm, 0.5))
    a = float(rng.uniform(0, 2 * math.pi))
    hx, hy = x + 0.35 * size * math.cos(a), y + 0.35 * size * math.sin(a)
    margin = max(0.5 / spacing_mm, 0.5)
    hilum = mass_stamp(hx, hy, size * 0.22, -0.8 * contrast, rng, 0.05, margin)
    return [node, hilum]


def vessel_polyline(
    rng: np.random.Generator, start: tuple[float, float], heading: float, length_px: float
) -> np.ndarray:
    """A blood vessel's course: a smooth random walk of the heading (points in pixels)."""
    n = max(int(length_px / 4), 8)
    turns = np.cumsum(rng.normal(0, 0.06, n))
    turns = np.convolve(turns, np.ones(5) / 5, mode="same")
    angles = heading + turns
    step = length_px / n
    x = start[0] + np.cumsum(step * np.cos(angles))
    y = start[1] + np.cumsum(step * np.sin(angles))
    return np.stack([np.concatenate([[start[0]], x]), np.concatenate([[start[1]], y])], axis=1)
