"""Fixtures for the blending tests; helpers live in blend_helpers (a unique module name across test dirs)."""

from blend_helpers import *  # noqa: F401,F403
