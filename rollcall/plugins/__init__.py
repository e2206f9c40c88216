"""The built-in plugins: detector, recognizer, attendance, the optional emotion and
engagement analyzers, and the notifiers. They use only the public API, ``rollcall``."""
