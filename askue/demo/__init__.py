"""`askue demo`: the whole system on one machine, on embedded defaults."""
from askue.demo.cli import add_arguments, run

__all__ = ["add_arguments", "run"]
