"""Serving: the Patchwork twin as an explicit-state SavedModel module (docs/design.md section 9)."""
