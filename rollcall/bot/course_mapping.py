"""Which course a Zoom recording belongs to, from ``[[zoom.course_map]]`` rules."""

from __future__ import annotations

from fnmatch import fnmatch

from rollcall.config import CourseRule


def course_for(
    rules: list[CourseRule], *, meeting_id: str | int | None, topic: str, host_email: str
) -> str | None:
    """The course of the first rule that matches, or None (the recording is skipped).

    A rule matches when the meeting id is listed, the topic matches one of its
    patterns (case-insensitive shell-style), or the host email is listed
    (case-insensitive).
    """
    mid = str(meeting_id or "").replace(" ", "")
    topic_l = (topic or "").lower()
    host_l = (host_email or "").lower()
    for rule in rules:
        if mid and mid in {m.replace(" ", "") for m in rule.meeting_ids}:
            return rule.course
        if any(fnmatch(topic_l, pattern.lower()) for pattern in rule.topics):
            return rule.course
        if host_l and host_l in {e.lower() for e in rule.host_emails}:
            return rule.course
    return None
