"""Benchmarks: one file per benchmark (bench/<area>_<name>.py), each printing one
JSON object as its last stdout line; bench/run.py runs them all and writes the report."""
