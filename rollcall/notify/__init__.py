"""Instructor notifications: the meeting summary that the email and chat notifiers send."""
