"""askue — open metering platform (АСКУЭ)."""

__version__ = "0.1.0"
