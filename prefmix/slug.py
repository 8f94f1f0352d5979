"""Slugs: the one way prefmix turns free text (teacher names, batch ids) into names for keys and files."""

from __future__ import annotations

import re


def slug(text: str, max_length: int = 100) -> str:
    """Lower-case letters, digits and single dashes; never empty."""
    return (re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x")[:max_length].rstrip("-") or "x"
