"""Reports of a run: figures (PNG) and, from the run directory alone, an HTML page."""

from evalcast.report.plots import plot_proxies, run_axis

__all__ = ["plot_proxies", "run_axis"]
