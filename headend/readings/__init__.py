"""Readings a person or a file brings: manual and consumer readings, corrections, the
expected value beside an entry field — one implementation for the API, the pages,
billing and imports."""
