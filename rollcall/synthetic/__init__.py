"""Synthetic Zoom meetings: the gallery-view generator with ground truth, scoring against
it, and the demo that ``rollcall demo`` runs."""
