"""The exam page hangs views as screening readers do and lists findings right breast first.

Orientation: the worker's thumbnail is the stored image flipped by the reader's flips
(preprocessing's own :func:`~mammotriage.preprocess.flip`), the right breast mirrored once more
so that the chest walls meet; the boxes move with the pixels. Ordering: R-CC | L-CC above
R-MLO | L-MLO, missing views as placeholders, extras after; findings and breast scores R
before L.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from sqlalchemy import select, update

from api_site import FINDING_BOX, STUDY_ROOT, Site
from mammotriage.api.thumbnails import draw_findings, score_colour
from mammotriage.dicom import read_image
from mammotriage.dicom.model import Laterality, Slot
from mammotriage.preprocess import flip
from mammotriage.synth.vendors import PROFILES
from mammotriage.worker.thumbnails import thumbnail_view, write_thumbnail
from mammotriage.worklist.hanging import (
    ORIENTATION_KEY,
    Orientation,
    box_on_thumbnail,
    finding_sort_key,
    hang,
    hanging_orientation,
)
from mammotriage.worklist.models import FindingRow, ImageRow, ScoreRow

ROWS, COLUMNS = 200, 100
#: A dense blob ("the lesion") in the stored image, and the finding's box around it.
BLOB = (10, 120, 40, 170)  # x0, y0, x1, y1, original pixels


def _stored_image() -> np.ndarray:
    pixels = np.zeros((ROWS, COLUMNS), dtype=np.float32)
    x0, y0, x1, y1 = BLOB
    pixels[y0:y1, x0:x1] = 1.0
    return pixels


@pytest.mark.parametrize("laterality", [Laterality.RIGHT, Laterality.LEFT])
@pytest.mark.parametrize(
    "stored_flips", [(False, False), (True, False), (False, True), (True, True)]
)
def test_a_box_lands_on_the_same_anatomy_after_the_flip_and_scale(
    laterality: Laterality, stored_flips: tuple[bool, bool]
) -> None:
    orientation = hanging_orientation(laterality, *stored_flips)
    # The right breast is mirrored once more than canonical (chest wall left), the left not.
    assert orientation.flip_horizontal == (stored_flips[0] != (laterality is Laterality.RIGHT))
    assert orientation.flip_vertical == stored_flips[1]
    height, width = 2 * ROWS, 2 * COLUMNS
    hung = flip(_stored_image(), orientation.flip_horizontal, orientation.flip_vertical)
    thumbnail = np.asarray(
        Image.fromarray(np.ascontiguousarray(hung)).resize(
            (width, height), Image.Resampling.NEAREST
        )
    )
    x0, y0, x1, y1 = (
        round(v) for v in box_on_thumbnail(BLOB, orientation, ROWS, COLUMNS, height, width)
    )
    assert thumbnail[y0:y1, x0:x1].min() == 1.0  # the whole box on the blob ...
    assert thumbnail.sum() == thumbnail[y0:y1, x0:x1].sum()  # ... and all of the blob in it


def test_the_served_box_follows_the_thumbnails_recorded_orientation(tmp_path: Path) -> None:
    """draw_findings flips the box as the PNG says the worker flipped the pixels; a PNG
    without the record (an older worker's) keeps its boxes where they were."""
    orientation = Orientation(flip_horizontal=True, flip_vertical=False)
    hung = flip(_stored_image(), True, False)
    picture = Image.fromarray((np.ascontiguousarray(hung) * 255).astype(np.uint8), mode="L")
    info = PngInfo()
    info.add_text(ORIENTATION_KEY, orientation.to_text())
    oriented, old = tmp_path / "oriented.png", tmp_path / "old.png"
    picture.save(oriented, pnginfo=info)
    Image.fromarray((_stored_image() * 255).astype(np.uint8), mode="L").save(old)

    for png, expected_x0 in ((oriented, COLUMNS - BLOB[2]), (old, BLOB[0])):
        drawn = Image.open(io.BytesIO(draw_findings(png, ROWS, COLUMNS, [(1, BLOB, 95)])))
        middle_y = (BLOB[1] + BLOB[3]) // 2
        assert drawn.convert("RGB").getpixel((expected_x0, middle_y)) == score_colour(95)
        # The box's inside is the blob, untouched (white).
        assert drawn.convert("RGB").getpixel((expected_x0 + 10, middle_y)) == (255, 255, 255)


def test_a_highlighted_box_is_ringed_in_white_and_each_box_labelled(tmp_path: Path) -> None:
    png = tmp_path / "view.png"
    Image.new("L", (COLUMNS, ROWS), 0).save(png)
    boxes = [(1, (10.0, 60.0, 40.0, 90.0), 95), (2, (60.0, 140.0, 90.0, 170.0), 40)]
    plain = np.asarray(Image.open(io.BytesIO(draw_findings(png, ROWS, COLUMNS, boxes))))
    lit = np.asarray(Image.open(io.BytesIO(draw_findings(png, ROWS, COLUMNS, boxes, 2))))
    white = np.all(lit == 255, axis=2)
    assert not np.all(plain == 255, axis=2).any()
    ys, xs = np.nonzero(white)
    assert xs.min() >= 55 and ys.min() >= 135  # the ring is around box 2 only
    # Labels: text in the box's colour on a black tag just above each box.
    above = plain[40:59, 10:40].astype(int)
    red = (above[:, :, 0] > 150) & (above[:, :, 1] < 120)
    assert red.any() and (above == 0).all(axis=2).any()


def test_views_hang_rcc_lcc_rmlo_lmlo_missing_marked_extras_after() -> None:
    images = [
        ("L", "MLO", True),  # 0
        ("R", "CC", False),  # 1: no thumbnail, a duplicate with one follows
        ("L", "CC", True),  # 2
        ("R", "CC", True),  # 3
        ("R", "XCCL", True),  # 4: another view
        ("U", "CC", True),  # 5: laterality unknown
        ("L", "ML", True),  # 6: ML fills MLO, but L-MLO is taken
    ]
    hanging = hang(images)
    assert hanging.places == (
        (Slot.R_CC, 3),
        (Slot.L_CC, 2),
        (Slot.R_MLO, None),  # missing
        (Slot.L_MLO, 0),
    )
    assert hanging.extras == (1, 4, 5, 6)


def test_findings_sort_right_before_left_then_by_score() -> None:
    findings = [("L", 90), (None, 99), ("R", 40), ("R", 70), ("L", 30)]
    assert sorted(findings, key=lambda f: finding_sort_key(*f)) == [
        ("R", 70),
        ("R", 40),
        ("L", 90),
        ("L", 30),
        (None, 99),
    ]


def _more_findings(site: Site, study: str) -> None:
    """Besides the fixture's L-CC finding (30, image 0): L-CC 90, R-CC 40, R-MLO 70."""
    with site.store.db.session() as session:
        score = session.execute(select(ScoreRow.id)).scalars().first()
        for sop, box, value in (
            (f"{study}.0", (5.0, 5.0, 20.0, 20.0), 90),
            (f"{study}.2", (10.0, 10.0, 30.0, 30.0), 40),
            (f"{study}.3", (10.0, 10.0, 30.0, 30.0), 70),
        ):
            session.add(
                FindingRow(
                    score_id=score,
                    sop_instance_uid=sop,
                    x0=box[0],
                    y0=box[1],
                    x1=box[2],
                    y1=box[3],
                    score=value,
                )
            )


def test_the_exam_page_hangs_views_and_lists_findings_right_first(
    site: Site, tmp_path: Path
) -> None:
    study = f"{STUDY_ROOT}.1"
    exam = site.exam(1, 7)
    _more_findings(site, study)
    png = tmp_path / "view.png"
    Image.new("L", (COLUMNS, ROWS), 0).save(png)
    with site.store.db.session() as session:
        session.execute(update(ImageRow).values(thumbnail=str(png), rows=ROWS, columns=COLUMNS))
        session.execute(
            update(ImageRow).where(ImageRow.sop_instance_uid == f"{study}.3").values(thumbnail=None)
        )
    anna, csrf = site.login("anna")
    anna.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": csrf})

    body = anna.get(f"/exams/{exam}").json()
    # The fixture's images: 0 L-CC, 1 L-MLO, 2 R-CC, 3 R-MLO.
    assert [(p["slot"], p["image_index"]) for p in body["hanging"]] == [
        ("R-CC", 2),
        ("L-CC", 0),
        ("R-MLO", 3),
        ("L-MLO", 1),
    ]
    assert body["extra_views"] == []
    assert list(body["breasts"]) == ["R", "L"]
    assert [(f["number"], f["laterality"], f["view"], f["score"]) for f in body["findings"]] == [
        (1, "R", "MLO", 70),
        (2, "R", "CC", 40),
        (3, "L", "CC", 90),
        (4, "L", "CC", 30),
    ]
    assert body["findings"][3]["box"] == list(FINDING_BOX)

    page = anna.get(f"/ui/exams/{exam}").text
    assert re.findall(r'data-testid="view" data-slot="([^"]+)"', page) == [
        "R-CC",
        "L-CC",
        "R-MLO",
        "L-MLO",
    ]
    numbers = re.findall(r'data-testid="finding"\s+data-number="(\d)"', page)
    assert numbers == ["1", "2", "3", "4"]
    # A link highlights the box on its view; R-MLO has no thumbnail, so finding 1 has none.
    assert re.findall(r'\?highlight=(\d)"', page) == ["2", "3", "4"]
    assert page.index('data-laterality="R">') < page.index('data-laterality="L">')  # scores
    assert f'href="/exams/{exam}/images/0.png?highlight=3"' in page
    lit = anna.get(f"/exams/{exam}/images/0.png?highlight=3")
    assert lit.status_code == 200
    assert anna.get(f"/exams/{exam}/images/0.png?highlight=0").status_code == 422


def test_an_exam_without_a_view_shows_it_missing(site: Site) -> None:
    study = f"{STUDY_ROOT}.1"
    exam = site.exam(1, 7)
    with site.store.db.session() as session:
        session.execute(
            update(ImageRow).where(ImageRow.sop_instance_uid == f"{study}.1").values(view="XCCL")
        )
    anna, csrf = site.login("anna")
    anna.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": csrf})
    body = anna.get(f"/exams/{exam}").json()
    assert body["hanging"][3] == {"slot": "L-MLO", "image_index": None}
    assert body["extra_views"] == [1]
    page = anna.get(f"/ui/exams/{exam}").text
    assert 'data-testid="missing-view">L-MLO missing' in page
    assert "extra view: L-XCCL" in page


def test_worker_thumbnails_hang_chest_walls_in_the_middle_for_every_vendor(
    tiny_synthetic: Path, tmp_path: Path
) -> None:
    """One exam per vendor profile (mirrored storage included): each rendered thumbnail
    has the chest wall (the denser edge) on the right for R views, on the left for L."""
    with (tiny_synthetic / "truth.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    first_exam: dict[str, str] = {}
    for row in rows:
        first_exam.setdefault(row["manufacturer"], row["exam_id"])
    assert set(first_exam) == {p.manufacturer for p in PROFILES}
    chosen = set(first_exam.values())
    mirrored = 0
    for row in rows:
        if row["exam_id"] in chosen:
            view = thumbnail_view(read_image(tiny_synthetic / row["path"]), 128)
            assert view is not None
            thumbnail = write_thumbnail(view, tmp_path / "t.png")
            pixels = np.asarray(Image.open(thumbnail.path), dtype=np.float32)
            strip = pixels.shape[1] // 8
            right_denser = pixels[:, -strip:].mean() > pixels[:, :strip].mean()
            assert right_denser == (row["laterality"] == "R"), row["path"]
            stored_right = row["chest_wall"] == "right"
            assert thumbnail.orientation.flip_horizontal == (stored_right != right_denser)
            mirrored += stored_right != (row["laterality"] == "R")
    assert mirrored  # a vendor stores right views with the chest wall on the left
