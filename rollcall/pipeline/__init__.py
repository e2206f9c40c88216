"""The frame pipeline: decoding, gallery tiles, tracking, presence, the plugin manager and
the orchestrator that runs one recording through the hooks of ``rollcall.hookspecs``."""
