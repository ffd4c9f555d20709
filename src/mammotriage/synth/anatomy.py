"""Synthetic breast anatomy: the shape, composition and findings of one breast.

A :class:`Breast` is sampled once per breast (:func:`sample_breast`): its outline in the CC
and MLO views (a superellipse half, the MLO with its pectoral muscle), its BI-RADS density
and dense fraction, skin and fat layers, its lesion and benign masses. Both views of an exam
are then drawn from the same breast by :mod:`mammotriage.synth.phantom`.

Geometry is worked out in the canonical orientation (chest wall on the left, nipple pointing
right, lateral/superior side up) in millimetres from the top-left corner.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace

import numpy as np

from mammotriage.dicom.model import Laterality, ViewPosition
from mammotriage.synth import lesions as ls
from mammotriage.synth.lesions import BenignMass, BreastPosition, Lesion, LesionType


class Density(str, enum.Enum):
    """BI-RADS breast composition (ACR BI-RADS Atlas 5th ed.), A fatty to D extremely dense."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"


#: Fraction of the breast area that is fibroglandular, per density category.
DENSE_FRACTION: dict[Density, tuple[float, float]] = {
    Density.A: (0.04, 0.14),
    Density.B: (0.18, 0.35),
    Density.C: (0.42, 0.6),
    Density.D: (0.68, 0.82),
}


class ChestWall(str, enum.Enum):
    """Side of the stored image the chest wall is on."""

    LEFT = "left"
    RIGHT = "right"


def display_chest_wall(laterality: Laterality) -> ChestWall:
    """Hanging convention: right breasts face left (chest wall right), left breasts face right."""
    return ChestWall.RIGHT if laterality is Laterality.RIGHT else ChestWall.LEFT


@dataclass(frozen=True)
class PectoralMuscle:
    """Pectoral muscle of an MLO view: a triangle at the top of the chest-wall side whose
    front edge bulges slightly (``curvature`` < 1)."""

    top_width_mm: float
    height_mm: float
    curvature: float

    def edge_x(self, y: np.ndarray) -> np.ndarray:
        t = np.clip(1 - y / self.height_mm, 0, 1)
        return np.asarray(self.top_width_mm * t**self.curvature)


@dataclass(frozen=True)
class ViewGeometry:
    """Outline of the compressed breast in one view: a superellipse half with the chest wall
    at x = 0 and the nipple at (``nipple_depth_mm``, ``nipple_y_mm``).

    Upper and lower halves have their own extent and exponent: the MLO's upper half runs
    off the top of the image into the axilla along a nearly straight line.
    """

    nipple_depth_mm: float
    nipple_y_mm: float
    half_height_up_mm: float
    half_height_down_mm: float
    exponent_up: float
    exponent_down: float
    pectoral: PectoralMuscle | None = None

    def normalized_radius(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(q, d): q is 0 at the chest-wall centre and 1 on the skin; d approximates the
        distance to the skin in mm (positive inside), as (1 - q) / |grad q|.

        ``x`` varies along columns and ``y`` along rows, so the powers are taken on 1-D
        arrays and only their sum is 2-D: this runs on every pixel of every image.
        """
        up = y < self.nipple_y_mm
        b = np.where(up, self.half_height_up_mm, self.half_height_down_mm).astype(np.float32)
        p = np.where(up, self.exponent_up, self.exponent_down).astype(np.float32)
        ax = np.abs(x).astype(np.float32) / np.float32(self.nipple_depth_mm)
        ay = (np.abs(y - self.nipple_y_mm) / b).astype(np.float32)
        pu, pd = np.float32(self.exponent_up), np.float32(self.exponent_down)
        s = np.maximum(np.where(up, ax**pu, ax**pd) + ay**p, np.float32(1e-12))
        q = s ** (1 / p)
        ax1 = np.where(up, ax ** (pu - 1), ax ** (pd - 1)) / np.float32(self.nipple_depth_mm)
        ay1 = ay ** (p - 1) / b
        grad = (q / s) * np.sqrt(ax1**2 + ay1**2)
        return q, (1 - q) / np.maximum(grad, np.float32(1e-6))

    def point(self, position: BreastPosition, view: ViewPosition) -> tuple[float, float]:
        """Canonical (x, y) in mm of a finding at ``position``."""
        angle = position.cc_angle if view is ViewPosition.CC else position.mlo_angle
        r = position.nipple_distance_mm
        return (self.nipple_depth_mm - r * math.cos(angle), self.nipple_y_mm - r * math.sin(angle))

    def contains(self, x: float, y: float, margin_mm: float) -> bool:
        """Whether (x, y) lies inside the breast, ``margin_mm`` from skin, chest wall and muscle."""
        if x < margin_mm or y < margin_mm:
            return False
        _, d = self.normalized_radius(np.array([x]), np.array([y]))
        if d[0] < margin_mm:
            return False
        return not (
            self.pectoral is not None
            and x < float(self.pectoral.edge_x(np.array([y]))[0]) + margin_mm
        )


@dataclass(frozen=True)
class Breast:
    """One breast of one exam, as both of its views show it."""

    laterality: Laterality
    density: Density
    dense_fraction: float
    cc: ViewGeometry
    mlo: ViewGeometry
    nipple_radius_mm: float
    skin_mm: float
    subcutaneous_fat_mm: float
    retroglandular_fat_mm: float
    lesion: Lesion | None = None
    benign_masses: tuple[BenignMass, ...] = ()

    def geometry(self, view: ViewPosition) -> ViewGeometry:
        if view is ViewPosition.CC:
            return self.cc
        if view is ViewPosition.MLO:
            return self.mlo
        raise ValueError(f"view must be CC or MLO, got {view!r}")


def sample_breast(
    rng: np.random.Generator,
    laterality: Laterality,
    density: Density,
    field_mm: tuple[float, float],
    lesion_type: LesionType | None = None,
    subtlety: int = 3,
    *,
    shape_seed: int | None = None,
) -> Breast:
    """Shape, composition and findings of one breast imaged on a detector of ``field_mm``
    (height, width). With ``lesion_type`` the breast holds one cancer of that type.

    Pass the same ``shape_seed`` for both breasts of an exam: they then share their shape
    up to a few per cent, as a woman's breasts do (and as readers expect when they compare
    left with right).
    """
    cc, mlo = _outlines(
        np.random.default_rng(shape_seed) if shape_seed is not None else rng, rng, field_mm
    )
    lo, hi = DENSE_FRACTION[density]
    breast = Breast(
        laterality=laterality,
        density=density,
        dense_fraction=float(rng.uniform(lo, hi)),
        cc=cc,
        mlo=mlo,
        nipple_radius_mm=float(rng.uniform(3, 6)),
        skin_mm=float(rng.uniform(1.0, 2.0)),
        subcutaneous_fat_mm=float(rng.uniform(3, 9)),
        retroglandular_fat_mm=float(rng.uniform(2, 8)),
    )
    lesion = None
    if lesion_type is not None:
        lesion = ls.sample_lesion(rng, lesion_type, subtlety, BreastPosition(0, 0, 0))
        position = _place(rng, breast, lesion.size_mm / 2 + 4)
        lesion = replace(lesion, position=position)
    benign = []
    for _ in range(int(min(rng.poisson(0.6), 3))):
        benign.append(
            BenignMass(
                position=_place(rng, breast, 10.0),
                size_mm=float(rng.uniform(5, 14)),
                contrast=float(rng.uniform(0.03, 0.08)),
                shape_seed=int(rng.integers(2**31)),
            )
        )
    return replace(breast, lesion=lesion, benign_masses=tuple(benign))


def _outlines(
    shape_rng: np.random.Generator, rng: np.random.Generator, field_mm: tuple[float, float]
) -> tuple[ViewGeometry, ViewGeometry]:
    """CC and MLO outlines: drawn from ``shape_rng``, each value jittered a little by ``rng``."""
    fh, fw = field_mm

    def draw(lo: float, hi: float) -> float:
        return float(shape_rng.uniform(lo, hi)) * (1 + 0.03 * float(rng.standard_normal()))

    size = draw(0, 1)
    a_cc = min(60 + 60 * size, 0.8 * fw)
    total = min((110 + 90 * size) * draw(0.9, 1.1), 0.92 * fh)
    b_up = total * draw(0.48, 0.56)
    b_down = total - b_up
    cy = float(np.clip(fh * draw(0.47, 0.53), b_up + 0.02 * fh, 0.98 * fh - b_down))
    cc = ViewGeometry(a_cc, cy, b_up, b_down, draw(1.9, 2.5), draw(1.9, 2.5))

    a_mlo = min(a_cc * draw(1.05, 1.2), 0.88 * fw)
    cy_mlo = fh * draw(0.52, 0.62)
    b_down_mlo = min(draw(0.28, 0.38) * fh, 0.97 * fh - cy_mlo)
    w_top = draw(0.5, 0.75)
    p_up = draw(1.25, 1.7)
    b_up_mlo = cy_mlo / (1 - w_top**p_up) ** (1 / p_up)
    pectoral = PectoralMuscle(
        top_width_mm=w_top * a_mlo * draw(0.55, 0.85),
        height_mm=min(fh * draw(0.3, 0.5), cy_mlo + 0.1 * fh),
        curvature=draw(0.7, 1.0),
    )
    mlo = ViewGeometry(a_mlo, cy_mlo, b_up_mlo, b_down_mlo, p_up, draw(1.8, 2.4), pectoral)
    return cc, mlo


def _place(rng: np.random.Generator, breast: Breast, margin_mm: float) -> BreastPosition:
    """A position inside the breast in both views, ``margin_mm`` from skin and muscle."""
    a = breast.cc.nipple_depth_mm
    for _ in range(200):
        pos = BreastPosition(
            nipple_distance_mm=float(rng.uniform(0.2, 0.85) * a),
            cc_angle=float(rng.uniform(-0.9, 0.9)),
            mlo_angle=float(rng.uniform(-0.9, 0.9)),
        )
        if breast.cc.contains(*breast.cc.point(pos, ViewPosition.CC), margin_mm) and (
            breast.mlo.contains(*breast.mlo.point(pos, ViewPosition.MLO), margin_mm)
        ):
            return pos
    return BreastPosition(0.5 * a, 0.0, 0.0)
