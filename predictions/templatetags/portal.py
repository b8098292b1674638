"""Template filters for the portal's one vocabulary."""

from __future__ import annotations

from django import template

from predictions.models import LABEL_WORDS

register = template.Library()


@register.filter
def label_words(label: str | None) -> str:
    """Return a model label as people read it: "no_tumor" -> "No tumour"."""
    return LABEL_WORDS.get(label or "", label or "")
