"""Plotting for the course: plain functions that return matplotlib Figures."""
from .interactive import INTERACTIVE_CSS_CLASS, interactive_figure

__all__ = ["INTERACTIVE_CSS_CLASS", "interactive_figure"]
