"""Instructor notifications: the meeting summary (``summary``), composing messages (``messages``)
and delivering them through the notifier plugins (``delivery``); the queue is ``store.outbox``."""
