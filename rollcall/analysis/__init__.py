"""Analysing recordings end to end: one function from a video file to stored results,
reports and queued notifications, and a pool of processes that runs it."""
