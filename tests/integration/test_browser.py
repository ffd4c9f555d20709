"""The radiologists' page in a real browser: Debian's Chromium, driven by Playwright, on a
real ``mammotriage serve`` process whose store the real worker filled.

Each test logs in through the form as a radiologist (or the admin) in its own browser
context and works on exams the others leave alone: the queue in policy order, one exam read
with the keyboard, blinded double reading ending in consensus, another reader's claimed
exam, the admin's statistics. Screenshots of the queue and of an exam with findings are
written to ``test-artifacts/browser/`` on every run.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, ViewportSize, expect

from fixtures_browser import ReadingService
from mammotriage.synth.vendors import PROFILES
from worker_helpers import MODEL

pytestmark = pytest.mark.integration

VIEWPORT: ViewportSize = {"width": 1400, "height": 900}
#: The CSS custom property of each AI category's colour (static/app.css).
CATEGORY_COLOUR = "--c{}"

OpenAs = Callable[[str], Page]


@pytest.fixture
def open_as(reading_service: ReadingService, chromium: Browser) -> Iterator[OpenAs]:
    """``open_as(username)``: a fresh browser context logged in through the form, on the
    page the login leads to. Contexts are closed at the end of the test."""
    contexts: list[BrowserContext] = []

    def login(username: str) -> Page:
        context = chromium.new_context(viewport=VIEWPORT, base_url=reading_service.url)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/login")
        page.get_by_test_id("login-username").fill(username)
        page.get_by_test_id("login-password").fill(reading_service.password)
        page.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("user-menu")).to_contain_text(username)
        return page

    yield login
    for context in contexts:
        context.close()


def rows_of(page: Page) -> list[dict[str, str]]:
    """The queue rows' data attributes, top to bottom."""
    return page.get_by_test_id("queue-row").evaluate_all(
        "rows => rows.map(row => ({...row.dataset}))"
    )


def worklist(page: Page, queue: str = "all") -> dict[str, Any]:
    """``GET /worklist`` with the page's session: what the API says this reader's queue is."""
    answer = page.request.get(f"/worklist?queue={queue}")
    assert answer.ok, answer.text()
    return answer.json()


def row(page: Page, exam_id: str) -> Any:
    return page.locator(f'[data-testid="queue-row"][data-exam-id="{exam_id}"]')


def hex_to_rgb(colour: str) -> str:
    value = colour.strip().lstrip("#")
    r, g, b = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgb({r}, {g}, {b})"


#: The standard hanging, in DOM (reading) order.
HANGING = ("R-CC", "L-CC", "R-MLO", "L-MLO")


def check_hanging(page: Page) -> None:
    """The exam page hangs R-CC | L-CC above R-MLO | L-MLO, each right view's chest wall on
    its right edge and each left view's on its left edge, the pairs meeting in the middle."""
    views = page.locator('[data-testid="hanging"] [data-testid="view"]')
    expect(views).to_have_count(4)
    places = views.evaluate_all("figures => figures.map(f => ({...f.dataset}))")
    assert [p["slot"] for p in places] == list(HANGING), places
    for place in places:
        assert place["missing"] == "false", place
        assert place["laterality"] == place["slot"][0], place
        mlo_like = {"MLO", "ML", "LM"}
        assert place["view"] in ({"CC"} if place["slot"].endswith("CC") else mlo_like), place
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('[data-testid="thumbnail"]'))
                    .every(img => img.complete && img.naturalWidth > 0)"""
    )
    # Each thumbnail's denser edge (the chest wall) and where it sits on the page.
    shown = page.locator('[data-testid="hanging"] img').evaluate_all(
        """images => images.map(img => {
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const context = canvas.getContext('2d');
            context.drawImage(img, 0, 0);
            const strip = Math.max(1, Math.floor(canvas.width / 8));
            const mean = (x0) => {
                const data = context.getImageData(x0, 0, strip, canvas.height).data;
                let sum = 0;
                for (let i = 0; i < data.length; i += 4) sum += data[i];
                return sum / (data.length / 4);
            };
            const rect = img.getBoundingClientRect();
            return {slot: img.dataset.slot, x: rect.x, y: rect.y, width: rect.width,
                    wall: mean(canvas.width - strip) > mean(0) ? 'R' : 'L'};
        })"""
    )
    boxes = {view["slot"]: view for view in shown}
    assert [view["slot"] for view in shown] == list(HANGING), shown
    assert all(view["wall"] == view["slot"][0] for view in shown), shown
    for right, left in (("R-CC", "L-CC"), ("R-MLO", "L-MLO")):
        gap = boxes[left]["x"] - (boxes[right]["x"] + boxes[right]["width"])
        assert 0 <= gap <= 8, (right, left, boxes)  # chest walls meet in the middle
    assert boxes["R-CC"]["y"] < boxes["R-MLO"]["y"] and boxes["L-CC"]["y"] < boxes["L-MLO"]["y"]


def check_findings_list_highlights(page: Page, exam_id: str) -> None:
    """The findings list (R before L, then by score) matches the API; a click highlights
    the box on its view (the thumbnail re-requested with ?highlight=N, drawn differently)."""
    answer = page.request.get(f"/exams/{exam_id}")
    findings = answer.json()["findings"]
    assert findings, "the top exam has findings"
    side = {"R": 0, "L": 1}
    keys = [(side.get(f["laterality"], 2), -f["score"]) for f in findings]
    assert keys == sorted(keys)
    items = page.get_by_test_id("finding")
    expect(items).to_have_count(len(findings))
    shown = items.evaluate_all("items => items.map(i => ({...i.dataset}))")
    assert [(int(i["number"]), int(i["score"])) for i in shown] == [
        (f["number"], f["score"]) for f in findings
    ]
    link = page.locator('a[data-testid="finding"]').first
    number, index = link.get_attribute("data-number"), link.get_attribute("data-image-index")
    image = page.locator(f'[data-testid="thumbnail"][data-index="{index}"]')
    plain = image.get_attribute("src") or ""
    link.click()
    expect(link).to_have_attribute("aria-pressed", "true")
    expect(image).to_have_attribute("src", f"{plain}?highlight={number}")
    expect(page.locator(f'figure.highlighted img[data-index="{index}"]')).to_have_count(1)
    page.wait_for_function(
        """img => img.complete && img.naturalWidth > 0""", arg=image.element_handle()
    )
    assert page.request.get(f"{plain}?highlight={number}").body() != page.request.get(plain).body()
    link.click()  # a second click turns it off
    expect(link).to_have_attribute("aria-pressed", "false")
    expect(image).to_have_attribute("src", plain)


def decide(page: Page, *, recall: bool, note: str | None = None) -> None:
    """Fill the decision form with the mouse and submit it; back on the queue."""
    page.get_by_test_id("decide-recall" if recall else "decide-no-recall").check()
    if recall:  # a reason of the site's recall category (the default's)
        page.locator('[data-testid="decide-reason"][data-code="mass"]').check()
    if note is not None:
        page.get_by_test_id("decide-note").fill(note)
    page.get_by_test_id("decide-submit").click()
    page.wait_for_url(re.compile(r"/$"))


def test_queue_lists_exams_in_policy_order_coloured_by_category(
    open_as: OpenAs, browser_artifacts: Path
) -> None:
    page = open_as("carol")

    rows = rows_of(page)
    api = worklist(page)
    assert [r["examId"] for r in rows] == [item["exam_id"] for item in api["items"]]
    assert [(r["category"], r["mode"], r["priority"]) for r in rows] == [
        (str(item["category"]), item["mode"], str(item["priority"]).lower())
        for item in api["items"]
    ]
    # The policy's order, independently of the API: priority first, then higher category.
    order = [(r["priority"] != "true", -int(r["category"])) for r in rows]
    assert order == sorted(order)
    assert rows[0]["priority"] == "true" and rows[0]["category"] == "10"
    assert {"single", "double"} <= {r["mode"] for r in rows}

    # Every row (its left border and its badge) carries its category's colour.
    colours = page.get_by_test_id("queue-row").evaluate_all(
        """rows => rows.map(row => ({
            border: getComputedStyle(row).borderLeftColor,
            badge: getComputedStyle(row.querySelector('.badge')).backgroundColor,
        }))"""
    )
    palette = page.evaluate(
        "names => names.map(n => getComputedStyle(document.documentElement).getPropertyValue(n))",
        [CATEGORY_COLOUR.format(int(r["category"])) for r in rows],
    )
    for shown, colour in zip(colours, palette, strict=True):
        assert shown == {"border": hex_to_rgb(colour), "badge": hex_to_rgb(colour)}
    highest = colours[0]["badge"]
    lowest = colours[min(range(len(rows)), key=lambda i: int(rows[i]["category"]))]["badge"]
    assert highest != lowest

    total = page.get_by_test_id("queue-total")
    expect(total).to_have_attribute("data-total", str(api["total"]))
    expect(total).to_have_text(f"{api['total']} exams left")
    assert api["total"] == len(rows)
    oldest = page.get_by_test_id("queue-oldest")
    assert (
        abs(int(oldest.get_attribute("data-seconds") or "-1") - api["oldest_waiting_seconds"]) < 60
    )
    expect(oldest).to_have_text(re.compile(r"^\d+ (min|h \d\d min|d \d+ h)$"))
    expect(page.locator('[data-testid="queue-tab"][aria-current="page"]')).to_have_attribute(
        "data-queue", "all"
    )

    page.screenshot(path=browser_artifacts / "queue.png")


def test_reader_claims_views_and_decides_with_the_keyboard(
    open_as: OpenAs, browser_artifacts: Path, tiny_synthetic: Path
) -> None:
    page = open_as("alice")
    rows = rows_of(page)
    expect(page.get_by_test_id("queue-row").first).to_have_attribute("aria-selected", "true")

    # Enter on the first row (a priority exam, with findings) claims and opens it.
    top = rows[0]["examId"]
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/ui/exams/{top}")
    detail = page.get_by_test_id("exam-detail")
    expect(detail).to_have_attribute("data-exam-id", top)
    expect(page.get_by_test_id("pacs-notice")).to_contain_text(
        "The diagnostic read happens in the PACS viewer"
    )
    # The reader finds the study in the PACS: its identifiers as the files say (truth.csv),
    # and the site's viewer link (a new tab) naming the study and its accession number.
    link = page.get_by_test_id("pacs-viewer-link")
    expect(link).to_have_attribute("target", "_blank")
    assert "noopener" in (link.get_attribute("rel") or "").split()
    query = parse_qs(urlsplit(link.get_attribute("href") or "").query)
    with (tiny_synthetic / "truth.csv").open(newline="") as f:
        truth = next(r for r in csv.DictReader(f) if r["exam_id"] == query["study"][0])
    assert query["acc"] == [truth["accession_number"]]
    expect(page.get_by_test_id("accession-number")).to_have_text(truth["accession_number"])
    expect(page.get_by_test_id("patient-id")).to_have_text(truth["patient_id"])
    expect(page.get_by_test_id("model-sha256")).to_have_text(
        hashlib.sha256(MODEL.read_bytes()).hexdigest()
    )
    thumbnails = page.get_by_test_id("thumbnail")
    expect(thumbnails).to_have_count(4)
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('[data-testid="thumbnail"]'))
                    .every(img => img.complete && img.naturalWidth > 0)"""
    )
    # The thumbnails are greyscale; the AI's boxes are the only coloured pixels.
    coloured = thumbnails.evaluate_all(
        """images => images.map(img => {
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const context = canvas.getContext('2d');
            context.drawImage(img, 0, 0);
            const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
            let count = 0;
            for (let i = 0; i < data.length; i += 4) {
                const hi = Math.max(data[i], data[i + 1], data[i + 2]);
                const lo = Math.min(data[i], data[i + 1], data[i + 2]);
                if (hi - lo > 100) count++;
            }
            return count;
        })"""
    )
    assert sum(coloured) > 0, coloured
    check_findings_list_highlights(page, top)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=browser_artifacts / "exam.png")

    # Every exam, one per vendor profile at least (mirrored storage included), hangs in
    # the standard order with the chest walls meeting: claimed, looked at, released.
    with (tiny_synthetic / "truth.csv").open(newline="") as f:
        vendor_of = {r["accession_number"]: r["manufacturer"] for r in csv.DictReader(f)}
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    seen: set[str] = set()
    vendors = {profile.manufacturer for profile in PROFILES}
    for item in worklist(page)["items"]:
        exam_id = str(item["exam_id"])
        if seen == vendors:
            break
        if exam_id != top:
            claimed = page.request.post(f"/exams/{exam_id}/claim", headers={"X-CSRF-Token": csrf})
            assert claimed.ok, claimed.text()
        page.goto(f"/ui/exams/{exam_id}")
        check_hanging(page)
        seen.add(vendor_of[page.get_by_test_id("accession-number").inner_text()])
        if exam_id != top:
            released = page.request.post(
                f"/exams/{exam_id}/release", headers={"X-CSRF-Token": csrf}
            )
            assert released.ok, released.text()
    assert seen == vendors
    page.goto(f"/ui/exams/{top}")

    # Esc releases it and goes back to the queue, where it is on offer again.
    page.keyboard.press("Escape")
    page.wait_for_url(re.compile(r"/$"))
    expect(page.get_by_test_id("flash")).to_contain_text("released")
    expect(row(page, top).get_by_test_id("claim")).to_be_visible()
    expect(row(page, top).get_by_test_id("queue-patient")).to_contain_text(
        truth["accession_number"]
    )

    # j / k move the cursor to a single-reading exam; Enter opens it; n, s decide.
    rows = rows_of(page)
    target = next(i for i, r in enumerate(rows) if r["mode"] == "single")
    single = rows[target]["examId"]
    for _ in range(target + 1):
        page.keyboard.press("j")
    page.keyboard.press("k")
    expect(row(page, single)).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/ui/exams/{single}")
    expect(page.get_by_test_id("exam-detail")).to_have_attribute("data-mode", "single")
    # The form offers the site's screening decisions (the default ones), no BI-RADS; the
    # claim's expiry is shown in the browser's time zone.
    assert page.locator('input[name="category"]').evaluate_all(
        "inputs => inputs.map(i => i.value)"
    ) == ["no-recall", "recall", "technical-recall"]
    expect(page.locator('select[name="birads"]')).to_have_count(0)
    expiry = page.locator('[data-testid="claim-expiry"] time')
    local = expiry.evaluate(
        """t => new Date(t.getAttribute('datetime')).toLocaleString(undefined,
               {hour: '2-digit', minute: '2-digit', timeZoneName: 'short'})"""
    )
    expect(expiry).to_have_text(local)
    page.keyboard.press("r")
    expect(page.get_by_test_id("decide-recall")).to_be_checked()
    page.keyboard.press("n")
    expect(page.get_by_test_id("decide-no-recall")).to_be_checked()
    page.keyboard.press("s")
    page.wait_for_url(re.compile(r"/$"))
    expect(page.get_by_test_id("flash")).to_have_text(
        "Decision recorded (Normal / benign: no recall); exam now read."
    )
    expect(row(page, single)).to_have_count(0)
    # The cursor is on the next unread exam, offered for Enter.
    selected = page.locator('[data-testid="queue-row"][aria-selected="true"]')
    expect(selected).to_have_attribute("data-next-unread", "true")
    assert selected.get_attribute("data-status") != "consensus"
    expect(page.get_by_test_id("next-unread")).to_be_visible()
    assert single not in {item["exam_id"] for item in worklist(page)["items"]}
    expect(page.get_by_test_id("queue-total")).to_have_attribute("data-total", str(len(rows) - 1))


def test_double_reading_is_blinded_and_disagreement_goes_to_both_readers_consensus(
    open_as: OpenAs,
) -> None:
    first, second, third = open_as("alice"), open_as("bob"), open_as("carol")
    exam = next(
        r["examId"]
        for r in reversed(rows_of(first))
        if r["mode"] == "double" and r["status"] == "unread"
    )
    note = "first reader: spiculated mass, upper outer quadrant (ref 7431)"

    row(first, exam).get_by_test_id("claim").click()
    first.wait_for_url(f"**/ui/exams/{exam}")
    decide(first, recall=True, note=note)
    expect(row(first, exam)).to_have_count(0)

    second.reload()
    row(second, exam).get_by_test_id("claim").click()
    second.wait_for_url(f"**/ui/exams/{exam}")
    expect(second.get_by_test_id("exam-detail")).to_have_attribute("data-blinded", "true")
    expect(second.get_by_test_id("blinded-notice")).to_be_visible()
    expect(second.get_by_test_id("decision")).to_have_count(0)
    assert "7431" not in second.content()
    assert "alice" not in second.get_by_test_id("exam-detail").inner_text()
    assert "RECALL" not in second.get_by_test_id("exam-detail").inner_text()
    decide(second, recall=False)
    expect(second.get_by_test_id("flash")).to_contain_text("exam now consensus")
    # "next" is the next unread exam, not the consensus exam on the queue.
    selected = second.locator('[data-testid="queue-row"][aria-selected="true"]')
    expect(selected).to_have_attribute("data-next-unread", "true")
    assert selected.get_attribute("data-status") == "unread"
    expect(row(second, exam)).to_have_attribute("data-status", "consensus")

    # The packaged policy's consensus is both first readers': not carol's to take.
    third.goto("/?queue=consensus")
    expect(third.locator('[data-testid="queue-tab"][aria-current="page"]')).to_have_attribute(
        "data-queue", "consensus"
    )
    expect(row(third, exam)).to_have_count(0)
    for reader, last in ((first, "exam now consensus"), (second, "exam now read")):
        reader.goto("/?queue=consensus")
        expect(row(reader, exam)).to_have_attribute("data-status", "consensus")
        row(reader, exam).get_by_test_id("claim").click()
        reader.wait_for_url(f"**/ui/exams/{exam}")
        decisions = reader.get_by_test_id("decision")
        expect(decisions.first).to_have_attribute("data-reader", "alice")
        assert [
            (d.get_attribute("data-reader"), d.get_attribute("data-recall"))
            for d in decisions.all()
            if d.get_attribute("data-consensus") == "false"
        ] == [("alice", "true"), ("bob", "false")]
        expect(reader.get_by_test_id("decisions")).to_contain_text(note)
        expect(reader.get_by_test_id("decisions")).to_contain_text("Recall for assessment (Mass)")
        decide(reader, recall=True)
        expect(reader.get_by_test_id("flash")).to_contain_text(last)
    second.goto(f"/ui/exams/{exam}")
    expect(second.get_by_test_id("consensus-by")).to_have_text(
        "Consensus recorded by alice and bob."
    )

    for page in (first, second, third):
        for queue in ("all", "consensus"):
            assert exam not in {item["exam_id"] for item in worklist(page, queue)["items"]}
    expect(row(third, exam)).to_have_count(0)


def test_reader_cannot_open_an_exam_another_reader_holds(open_as: OpenAs) -> None:
    holder, other = open_as("alice"), open_as("bob")
    exam = next(
        r["examId"] for r in rows_of(holder) if r["mode"] == "single" and r["status"] == "unread"
    )
    row(holder, exam).get_by_test_id("claim").click()
    holder.wait_for_url(f"**/ui/exams/{exam}")

    answer = other.goto(f"/ui/exams/{exam}")
    assert answer is not None and answer.status == 403
    message = other.get_by_test_id("error-message")
    expect(message).to_have_attribute("data-status", "403")
    expect(message).to_contain_text("claimed by another reader")
    expect(other.get_by_test_id("decision-form")).to_have_count(0)
    other.goto("/")
    expect(row(other, exam)).to_have_count(0)

    holder.get_by_test_id("release").click()
    holder.wait_for_url(re.compile(r"/$"))
    other.reload()
    expect(row(other, exam).get_by_test_id("claim")).to_be_visible()


def test_admin_sees_queue_statistics(open_as: OpenAs, reading_service: ReadingService) -> None:
    page = open_as(reading_service.admin)

    page.wait_for_url("**/admin")
    everything = worklist(page)
    expect(page.get_by_test_id("admin-stats")).to_be_visible()
    expect(page.get_by_test_id("stat-waiting")).to_have_text(str(everything["total"]))
    by_category = {
        r.get_attribute("data-category"): int(r.locator("td").nth(1).inner_text())
        for r in page.get_by_test_id("stat-by-category").all()
    }
    expected = {str(c): 0 for c in range(1, 11)}
    for item in everything["items"]:
        expected[str(item["category"])] += 1
    assert by_category == expected
    users = page.get_by_test_id("admin-readers").get_by_test_id("reader").all_inner_texts()
    for name in (*reading_service.readers, reading_service.admin):
        assert any(text.startswith(name) for text in users), users
    expect(page.get_by_test_id("admin-policy")).to_contain_text("crd-2024.2")

    # The admin's worklist is read-only: every exam waiting, nothing to claim.
    page.goto("/")
    expect(page.get_by_test_id("queue-row")).to_have_count(everything["total"])
    expect(page.get_by_test_id("claim")).to_have_count(0)


#: Reports each Content-Security-Policy violation on the console, where the test collects it
#: (Playwright's init scripts are not themselves subject to the page's policy).
CSP_LISTENER = """document.addEventListener("securitypolicyviolation", (event) =>
    console.error(`csp-violation ${event.violatedDirective} ${event.blockedURI}`));"""


def test_every_page_works_under_the_strict_content_security_policy(
    reading_service: ReadingService, chromium: Browser
) -> None:
    reports: list[str] = []
    contexts: list[BrowserContext] = []

    def collect(message: ConsoleMessage) -> None:
        if "csp-violation" in message.text or "Content Security Policy" in message.text:
            reports.append(message.text)

    def open_page(username: str) -> Page:
        context = chromium.new_context(viewport=VIEWPORT, base_url=reading_service.url)
        context.set_default_timeout(10_000)
        context.add_init_script(CSP_LISTENER)
        contexts.append(context)
        page = context.new_page()
        page.on("console", collect)
        answer = page.goto("/login")
        assert answer is not None
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        page.get_by_test_id("login-username").fill(username)
        page.get_by_test_id("login-password").fill(reading_service.password)
        page.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("user-menu")).to_contain_text(username)
        return page

    try:
        # The queue: app.js (from /static) runs and moves the cursor with j and k.
        page = open_page("carol")
        rows = page.get_by_test_id("queue-row")
        expect(rows.first).to_have_attribute("aria-selected", "true")
        page.keyboard.press("j")
        expect(rows.nth(1)).to_have_attribute("aria-selected", "true")
        page.keyboard.press("k")
        expect(rows.first).to_have_attribute("aria-selected", "true")
        # An exam: Enter opens it, r and n choose, Esc releases it (no decision is made).
        top = rows_of(page)[0]["examId"]
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/ui/exams/{top}")
        page.wait_for_function(
            """() => Array.from(document.querySelectorAll('[data-testid="thumbnail"]'))
                        .every(img => img.complete && img.naturalWidth > 0)"""
        )
        page.keyboard.press("r")
        expect(page.get_by_test_id("decide-recall")).to_be_checked()
        page.keyboard.press("n")
        expect(page.get_by_test_id("decide-no-recall")).to_be_checked()
        page.keyboard.press("Escape")
        page.wait_for_url(re.compile(r"/$"))
        expect(page.get_by_test_id("flash")).to_contain_text("released")
        # The admin's page.
        admin = open_page(reading_service.admin)
        admin.wait_for_url("**/admin")
        expect(admin.get_by_test_id("admin-stats")).to_be_visible()
        assert reports == []

        # The policy is in force: a script put into the page inline is refused and reported.
        with page.expect_console_message(lambda message: "csp-violation" in message.text):
            page.evaluate(
                """() => {
                    const script = document.createElement('script');
                    script.textContent = 'window.inlineScriptRan = true';
                    document.body.appendChild(script);
                }"""
            )
        assert page.evaluate("() => window.inlineScriptRan") is None
        assert any("script-src" in report for report in reports), reports
    finally:
        for context in contexts:
            context.close()
