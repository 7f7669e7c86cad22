"""Helpers shared by benchmarks (run.py only runs bench/<area>_<name>.py, not this package)."""
