"""Figures drawn without a display: matplotlib's pyplot on its file-only backend, imported when a report first
draws (it is slow to import, and a report without figures never needs it)."""

from __future__ import annotations


def pyplot():
    """matplotlib.pyplot, set to draw into files only (the Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
