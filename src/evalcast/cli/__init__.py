"""Command line interface (``evalcast --help``)."""
