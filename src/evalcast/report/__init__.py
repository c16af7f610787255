"""Reports of a run: figures (PNG) and, from the run directory alone, a self-contained HTML page."""

from evalcast.report.page import write_report
from evalcast.report.plots import plot_proxies

__all__ = ["plot_proxies", "write_report"]
