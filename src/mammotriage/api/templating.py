"""The page's templates (Jinja2, autoescaped) and the helpers they use.

Every URL a page names is root-relative (``/static/app.css``, ``/ui/exams/...``; the
templates' ``url_for`` gives one too), so that a page served through a TLS-terminating proxy
loads its style and script over the scheme and host the browser used.

Everything the page needs is served from the package (``templates/``, ``static/``): no CDN,
so that a reading room without internet works.

Stable ``data-testid`` attributes, for browser tests (Playwright) — keep them when
restyling:

=========================  ===============================================================
testid                     element
=========================  ===============================================================
``login-form``             the login form; fields ``login-username``, ``login-password``,
                           button ``login-submit``; ``login-error`` when login failed
``user-menu``              the signed-in user's name and role (``data-role``); ``logout``
``flash``                  the one-line message after an action (decision recorded, ...)
``queue-tab``              a queue filter tab, ``data-queue`` = all | single | double |
                           priority | consensus | mine; ``aria-current="page"`` on the active
``queue-total``            how many exams are left in this queue (``data-total``)
``queue-oldest``           how long the oldest waited (``data-seconds``)
``queue-row``              one exam: ``data-exam-id`` (internal UUID), ``data-category``
                           (1-10 or empty), ``data-mode`` (single | double), ``data-priority``
                           (true | false), ``data-status``; ``aria-selected`` on the row the
                           keyboard cursor is on
``queue-empty``            shown instead of rows when the queue is empty
``claim``                  the row's claim button (radiologists; claims and opens the exam)
``open``                   the row's link to an exam the reader already holds
``queue-next-page``        ``queue-prev-page``: paging links
``shortcut-help``          the keyboard-shortcut help line
``exam-detail``            the exam page's root (``data-exam-id``, ``data-status``,
                           ``data-mode``, ``data-blinded``)
``pacs-notice``            "the diagnostic read happens in the PACS viewer"
``exam-category``          ``exam-score``, ``exam-rule``, ``model-name``, ``model-sha256``
``breast-score``           one per breast, ``data-laterality`` = L | R
``thumbnail``              one image per view with a thumbnail (``data-index``,
                           ``data-laterality``, ``data-view``)
``report-reference``       the SR's SOPInstanceUID and location; ``report-download`` link
``blinded-notice``         shown while the other reader's decision is hidden
``decisions``              the readers' decisions once visible; rows ``decision``
                           (``data-reader``, ``data-recall``, ``data-consensus``)
``decision-form``          the decision form: radios ``decide-recall`` / ``decide-no-recall``,
                           select ``decide-birads``, textarea ``decide-note``, button
                           ``decide-submit``
``release``                release the exam and go back to the queue
``back-to-queue``          link back to the queue
``admin-stats``            admin page statistics; ``stat-waiting``, ``stat-by-category``
                           rows ``data-category``; ``admin-readers`` rows ``reader``;
                           ``admin-policy``
``admin-monitoring-link``  the admin page's link to the monitoring view
``device-plot``            monitoring: one device's figure (``data-site``, ``data-device``,
                           ``data-alert`` = true | false) holding its SVG plot
                           (``svg.device-plot``, class ``alert`` when a rule fired);
                           ``device-alert`` the line naming the rules; ``unusable-reasons``,
                           ``partial-reasons`` (the views partial exams lack)
``stored-alert``           monitoring: a stored alert (``data-rule``, ``data-week``), newest
                           week first; ``reader-figures`` (``data-site``, ``data-band``),
                           ``outcome-figures`` (``data-band``) rows; ``monitoring-error``
                           when the monitor is unavailable
``error-message``          an error page's message (``data-status``)
=========================  ===============================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context

from mammotriage.api.security import csrf_token

PACKAGE_DIR = Path(__file__).parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"


def waiting(seconds: float | timedelta | None) -> str:
    """A waiting time for people: ``45 min``, ``3 h 05 min``, ``2 d 4 h``."""
    if seconds is None:
        return "-"
    total = int(seconds.total_seconds() if isinstance(seconds, timedelta) else seconds)
    minutes, hours, days = total // 60 % 60, total // 3600 % 24, total // 86400
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"


def demonstration_shas() -> frozenset[str]:
    """The sha256 of the packaged demonstration model and its variants: a score whose model
    has one of them came from a model trained on synthetic data, not for clinical use."""
    from mammotriage import defaults
    from mammotriage.sidecar import load_sidecar

    sidecar = load_sidecar(defaults.model_path(), verify_hash=False)
    if not sidecar.demonstration:
        return frozenset()
    return frozenset({sidecar.sha256, *(variant.sha256 for variant in sidecar.variants)})


@pass_context
def url_for(context: Mapping[str, Any], name: str, /, **path_params: Any) -> str:
    """The templates' ``url_for``: the root-relative URL of a route or a static file
    (``/static/app.css``), never an absolute one. Starlette's own gives
    ``http://host/static/app.css`` as the server saw the request, which behind a
    TLS-terminating proxy is a mixed-content URL that the browser blocks."""
    request: Request = context["request"]
    return request.url_for(name, **path_params).path


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    templates.env.globals["url_for"] = url_for
    templates.env.filters["waiting"] = waiting
    shas = demonstration_shas()
    templates.env.globals["demonstration_model"] = lambda sha: sha in shas
    return templates


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render ``name`` with what every page needs: the user, the CSRF token, a flash line."""
    templates: Jinja2Templates = request.app.state.templates
    full = {
        "csrf_token": csrf_token(request.session),
        "flash": request.session.pop("flash", None),
        "user": None,
        **context,
    }
    response = templates.TemplateResponse(request, name, full, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "make_templates", "render", "url_for", "waiting"]
