"""Render the four views of one synthetic exam as PNGs for the README (docs/img/synth-*.png).

    python scripts/synth_samples.py [--seed 4] [--rows 1024] [--out docs/img]

The exam is drawn at full detector size (3328 x 2560 at 0.065 mm), then downsampled; the
left breast holds a spiculated mass whose truth box is outlined.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from mammotriage.dicom.model import Laterality, ViewPosition
from mammotriage.synth import (
    Density,
    DetectorFormat,
    LesionType,
    burn_in_label,
    display_chest_wall,
    render_view,
    sample_breast,
)

DETECTOR = DetectorFormat(3328, 2560, 0.065)
VIEWS = (
    (Laterality.RIGHT, ViewPosition.CC),
    (Laterality.LEFT, ViewPosition.CC),
    (Laterality.RIGHT, ViewPosition.MLO),
    (Laterality.LEFT, ViewPosition.MLO),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()

    breasts = {
        lat: sample_breast(
            np.random.default_rng([args.seed, k]),
            lat,
            Density.B,
            DETECTOR.field_mm,
            LesionType.SPICULATED_MASS if lat is Laterality.LEFT else None,
            subtlety=4,
            shape_seed=args.seed,
        )
        for k, lat in enumerate((Laterality.RIGHT, Laterality.LEFT))
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for k, (lat, view) in enumerate(VIEWS):
        chest_wall = display_chest_wall(lat)
        rendered = render_view(
            np.random.default_rng([args.seed, 10 + k]),
            breasts[lat],
            view,
            (DETECTOR.rows, DETECTOR.columns),
            DETECTOR.spacing_mm,
            chest_wall=chest_wall,
        )
        pixels = burn_in_label(
            rendered.pixels, f"{lat.value}{view.value}", chest_wall, DETECTOR.spacing_mm
        )
        if rendered.box is not None:
            b, w = rendered.box, 4
            pixels[b.y0 : b.y1, b.x0 : b.x0 + w] = pixels[b.y0 : b.y1, b.x1 - w : b.x1] = 1.0
            pixels[b.y0 : b.y0 + w, b.x0 : b.x1] = pixels[b.y1 - w : b.y1, b.x0 : b.x1] = 1.0
        columns = round(DETECTOR.columns * args.rows / DETECTOR.rows)
        image = Image.fromarray(np.rint(pixels * 255).astype(np.uint8))
        image = image.resize((columns, args.rows), Image.Resampling.LANCZOS)
        path = args.out / f"synth-{lat.value}-{view.value}.png"
        image.save(path)
        print(path)


if __name__ == "__main__":
    main()
