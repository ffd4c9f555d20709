"""The triage rule in the words a reader uses ("single reading: category 4"); the policy's
own sentence (``TriageDecision.rule``) stays in the page's tooltip and in the audit."""

from __future__ import annotations

from mammotriage.triage import ReadingMode


def rule_in_words(mode: ReadingMode, category: int | None, priority: bool, rule: str) -> str:
    """E.g. ``single reading: category 4``, ``double reading: category 8``, ``read first:
    category 10``; the safety net, a partial exam and an unscored one say so."""
    cat = "not scored" if category is None else f"category {category}"
    if rule.startswith("not scored"):
        return "double reading: not scored by the AI"
    if priority:
        reading = "double" if mode is ReadingMode.DOUBLE else "single"
        return f"read first: {cat} ({reading} reading)"
    if rule.startswith("safety net"):
        return f"double reading: {cat}, an AI finding above the safety net"
    if rule.startswith("partial exam"):
        return f"single reading: {cat}, views missing"
    if mode is ReadingMode.RULE_OUT:
        return f"no reader: {cat}"
    return f"{mode.value} reading: {cat}"


__all__ = ["rule_in_words"]
