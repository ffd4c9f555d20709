"""What the exam detail shows: thumbnails with the findings' boxes drawn in, per-breast
scores, the model, the SR reference (and the SR file from a local folder)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from sqlalchemy import update

from api_site import FINDING_BOX, MODEL_SHA, STUDY_ROOT, Site
from mammotriage.api.thumbnails import score_colour
from mammotriage.worklist.models import ImageRow

# The original image is 200 x 100 (rows x columns); its thumbnail 400 x 200: scale 2.
ROWS, COLUMNS, SCALE = 200, 100, 2


def _give_thumbnails(site: Site, study: str, folder: Path) -> None:
    png = folder / "view.png"
    Image.new("RGB", (COLUMNS * SCALE, ROWS * SCALE), (0, 0, 0)).save(png)
    with site.store.db.session() as session:
        session.execute(
            update(ImageRow)
            .where(ImageRow.sop_instance_uid == f"{study}.0")
            .values(thumbnail=str(png), rows=ROWS, columns=COLUMNS)
        )


def test_thumbnail_is_a_png_with_the_finding_box_drawn_at_scale(site: Site, tmp_path: Path) -> None:
    exam = site.exam(1, 2)
    _give_thumbnails(site, f"{STUDY_ROOT}.1", tmp_path)
    anna, csrf = site.login("anna")
    anna.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": csrf})
    answer = anna.get(f"/exams/{exam}/images/0.png")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(answer.content)).convert("RGB")
    assert image.size == (COLUMNS * SCALE, ROWS * SCALE)
    x0, y0, x1, y1 = (int(v * SCALE) for v in FINDING_BOX)
    middle_y = (y0 + y1) // 2
    assert image.getpixel((x0, middle_y)) == score_colour(30)  # the left edge of the box
    assert image.getpixel(((x0 + x1) // 2, middle_y)) == (0, 0, 0)  # inside left alone
    assert anna.get(f"/exams/{exam}/images/1.png").status_code == 404  # no thumbnail


def test_detail_shows_scores_model_and_thumbnail_links_but_no_dicom_uids(
    site: Site, tmp_path: Path
) -> None:
    exam = site.exam(1, 7)
    _give_thumbnails(site, f"{STUDY_ROOT}.1", tmp_path)
    anna, csrf = site.login("anna")
    anna.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": csrf})
    answer = anna.get(f"/exams/{exam}")
    body = answer.json()
    assert body["category"] == 7 and body["breasts"] == {"L": 65.0, "R": 1.0}
    assert (body["model_name"], body["model_sha256"]) == ("test-model", MODEL_SHA)
    assert body["images"][0]["thumbnail_url"] == f"/exams/{exam}/images/0.png"
    assert body["findings"] == [
        {
            "number": 1,
            "image_index": 0,
            "laterality": "L",
            "view": "CC",
            "box": list(FINDING_BOX),
            "score": 30,
        }
    ]
    assert "PACS viewer" in body["notice"]
    assert STUDY_ROOT not in answer.text


def test_the_sr_from_a_local_folder_is_served_and_its_reference_shown(
    site: Site, tmp_path: Path
) -> None:
    exam = site.exam(1, 2)
    sop = "1.2.826.0.1.3680043.9.9999.1"
    (tmp_path / f"{sop}.dcm").write_bytes(b"\0" * 128 + b"DICM")
    site.store.exams.save_report(f"{STUDY_ROOT}.1", sop, str(tmp_path))
    anna, csrf = site.login("anna")
    anna.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": csrf})
    report = anna.get(f"/exams/{exam}").json()["report"]
    assert report["destination"] == "folder"
    assert report["download_url"] == f"/exams/{exam}/report.dcm"
    answer = anna.get(report["download_url"])
    assert answer.status_code == 200 and answer.content.endswith(b"DICM")
    assert answer.headers["content-type"] == "application/dicom"
