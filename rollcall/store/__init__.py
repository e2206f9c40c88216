"""The database: SQLite schema and migrations, courses, students, photos, meetings and
their results, corrections, plugin settings, and the two queues (jobs, outbox)."""
