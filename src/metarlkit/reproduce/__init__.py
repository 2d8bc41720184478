"""Reproductions of published tables with the library's agents and one evaluation protocol."""

from metarlkit.reproduce.rl2 import EXPERIMENTS, format_table, paper_data, run

__all__ = ["EXPERIMENTS", "format_table", "paper_data", "run"]
