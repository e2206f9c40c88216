"""The ``rollcall`` command line: one module per command group."""
