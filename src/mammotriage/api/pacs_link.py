"""The link from an exam's page to the site's PACS viewer: a URL template per site.

The template names what the viewer opens the study by: ``{accession_number}``,
``{study_instance_uid}`` or ``{patient_id}`` (Orthanc's Stone viewer
``http://pacs:8042/stone-webviewer/index.html?study={study_instance_uid}``, OHIF
``https://pacs/viewer?StudyInstanceUIDs={study_instance_uid}``, a vendor viewer's URL scheme
by accession number). The template is checked when the settings load; each value is
percent-encoded when substituted, so that a value cannot change the link's shape.

Only the PACS's URL carries these values (the link the reader's browser opens); this
service's own URLs name an exam by its internal UUID only.
"""

from __future__ import annotations

import string
from urllib.parse import quote, urlsplit

#: What a template may name.
PLACEHOLDERS = ("accession_number", "study_instance_uid", "patient_id")


def check_template(template: str) -> str:
    """``template`` if it is an http(s) URL naming only :data:`PLACEHOLDERS`, at least one.

    Raises
    ------
    ValueError
        If a placeholder is unknown, positional or formatted, a brace is unmatched, or the
        URL is not http(s).
    """
    allowed = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:  # an unmatched brace
        raise ValueError(f"not a URL template ({exc}); placeholders are {allowed}") from exc
    named = 0
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "")
            shown += (f":{spec}" if spec else "") + "}"
            raise ValueError(f"unknown placeholder {shown} in the URL template; allowed: {allowed}")
        named += 1
    if not named:
        raise ValueError(f"the URL template names no placeholder; name one of {allowed}")
    scheme = urlsplit(template).scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(
            f"the URL template must be an http:// or https:// URL, got {scheme or 'no'} scheme"
        )
    return template


def viewer_link(template: str | None, **values: str | None) -> str | None:
    """The template with each placeholder replaced by its percent-encoded value; None when
    there is no template or it names a value the exam lacks."""
    if template is None:
        return None
    named = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    if any(not values.get(name) for name in named):
        return None
    return template.format(**{name: quote(str(values[name]), safe="") for name in named})


__all__ = ["PLACEHOLDERS", "check_template", "viewer_link"]
