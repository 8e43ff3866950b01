"""Serving: the Patchwork twin as an explicit-state SavedModel module (DESIGN.md section 9)."""
