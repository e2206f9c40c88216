"""Enrollment: checking and embedding students' photos, and loading a course's roster
(templates) for recognition."""
