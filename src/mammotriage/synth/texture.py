"""Texture for the breast phantoms: power-law random fields and the grid helpers they need.

Fibroglandular texture is a Gaussian random field with a 1/f^beta power spectrum, beta = 3,
the exponent measured on real mammograms (Burgess et al., Med Phys 2001). Fields are drawn
directly in the frequency domain (one inverse FFT each) on the coarse work grid of
:mod:`mammotriage.synth.phantom` and brought to full resolution by :func:`upsample`.
Everything here is pure array math with the randomness passed in as a seeded generator.
"""

from __future__ import annotations

import numpy as np


def _frequencies(shape: tuple[int, int], stretch: float = 1.0) -> np.ndarray:
    """Radial spatial frequency (cycles/pixel) on the half-spectrum grid of ``irfft2``."""
    fy = np.fft.fftfreq(shape[0]).astype(np.float32)[:, None] * stretch
    fx = np.fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    return np.asarray(np.sqrt(fy**2 + fx**2))


def _spectral_field(
    rng: np.random.Generator, shape: tuple[int, int], amplitude: np.ndarray
) -> np.ndarray:
    """Gaussian random field with amplitude spectrum ``amplitude``, zero mean, unit variance.

    White noise is drawn directly in the frequency domain (one inverse FFT, no forward one).
    """
    z = rng.standard_normal((2, *amplitude.shape), dtype=np.float32)
    field = np.fft.irfft2((z[0] + 1j * z[1]) * amplitude, s=shape).astype(np.float32)
    field -= field.mean()
    field /= field.std() + 1e-12
    return field


def power_law_field(
    rng: np.random.Generator, shape: tuple[int, int], beta: float = 3.0, stretch: float = 1.0
) -> np.ndarray:
    """Gaussian random field with power spectrum ~ 1/f^beta, zero mean, unit variance.

    ``stretch`` > 1 shortens the spectrum along axis 0, giving structures elongated along
    that axis (used for ducts radiating from the nipple).
    """
    f = _frequencies(shape, stretch)
    f[0, 0] = 1.0
    amp = f ** np.float32(-beta / 2)
    amp[0, 0] = 0.0
    return _spectral_field(rng, shape, amp)


def upsample(
    image: np.ndarray, factor: int, shape: tuple[int, int], *, from_right: bool = False
) -> np.ndarray:
    """Bilinear upsampling by an integer ``factor`` (pixel centres aligned), cropped to
    ``shape``: from the right edge with ``from_right``, so that upsampling commutes with
    mirroring. Strided writes per phase avoid the gathers a general resize would need."""
    if factor == 1:
        out = image
    else:
        h, w = image.shape
        padded = np.pad(image, 1, mode="edge")
        rows = np.empty((h * factor, w + 2), dtype=np.float32)
        for j in range(factor):
            o = (j + 0.5) / factor - 0.5
            lo, wt = (0, 1 + o) if o < 0 else (1, o)
            rows[j::factor] = padded[lo : lo + h] * (1 - wt) + padded[lo + 1 : lo + 1 + h] * wt
        out = np.empty((h * factor, w * factor), dtype=np.float32)
        for j in range(factor):
            o = (j + 0.5) / factor - 0.5
            lo, wt = (0, 1 + o) if o < 0 else (1, o)
            out[:, j::factor] = rows[:, lo : lo + w] * (1 - wt) + rows[:, lo + 1 : lo + 1 + w] * wt
    if from_right:
        return out[: shape[0], out.shape[1] - shape[1] :]
    return out[: shape[0], : shape[1]]


def bilinear_sample(grid: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``grid`` at fractional (row u, column v), clamped."""
    u = np.clip(u, 0, grid.shape[0] - 1.001)
    v = np.clip(v, 0, grid.shape[1] - 1.001)
    iu, iv = u.astype(np.intp), v.astype(np.intp)
    fu, fv = (u - iu).astype(np.float32), (v - iv).astype(np.float32)
    flat = grid.ravel()
    idx = iu * grid.shape[1] + iv
    top = flat.take(idx) * (1 - fv) + flat.take(idx + 1) * fv
    bottom = flat.take(idx + grid.shape[1]) * (1 - fv) + flat.take(idx + grid.shape[1] + 1) * fv
    return np.asarray(top * (1 - fu) + bottom * fu)


def smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0, 1)
    return t * t * (3 - 2 * t)


def _fast_length(n: int) -> int:
    """Smallest length >= n whose prime factors are 2, 3 and 5."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def texture_fields(
    rng: np.random.Generator, shape: tuple[int, int], ws: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three fields from one white-noise spectrum: the 1/f^3 field that places dense
    tissue, a 1/f^2.3 one for its inner detail, and a band-pass one peaking at a ~6 mm
    period whose blobs are fat lobules and whose zero crossings form the ligament network.

    Sharing the noise costs one random draw instead of three; the band-pass field still
    varies independently of the large-scale placement, since it lives at other frequencies.
    """
    # FFT lengths with only small prime factors: a length like 394 = 2 * 197 is many times
    # slower. The periodic field is cropped back to ``shape``.
    padded = (_fast_length(shape[0]), _fast_length(shape[1]))
    f = _frequencies(padded)
    f[0, 0] = 1.0
    z = rng.standard_normal((2, *f.shape), dtype=np.float32)
    noise = z[0] + 1j * z[1]
    fields = []
    lobule = f * np.float32(6.0 / ws)
    for amp in (f ** np.float32(-1.5), f ** np.float32(-1.15), lobule * np.exp(-0.5 * lobule**2)):
        amp[0, 0] = 0.0
        field = np.fft.irfft2(noise * amp, s=padded)[: shape[0], : shape[1]].astype(np.float32)
        field -= field.mean()
        field /= field.std() + 1e-12
        fields.append(field)
    return fields[0], fields[1], fields[2]
