"""blending."""
