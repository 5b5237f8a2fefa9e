"""The ``quantguard`` command: run, info, demo, report, validate."""
