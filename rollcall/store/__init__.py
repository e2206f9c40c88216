"""The database: connections and shared helpers (``db``), the schema's migrations
(``schema``), courses, students, photos, meetings and their results (``storage``),
corrections, plugin settings, and the two queues (jobs, outbox)."""
