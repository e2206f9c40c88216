"""Analysing a recording end to end: one function from a video file to stored results,
report files, retention and queued notifications, used by `rollcall analyze` and the service."""
