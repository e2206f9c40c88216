"""``rollcall serve``: the long-running service (HTTP server, scheduler, job workers)."""
