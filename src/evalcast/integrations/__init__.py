"""Thin framework adapters over :class:`evalcast.Monitor`, imported on demand
(``evalcast.integrations.transformers``, ``.lightning``, ``.accelerate``)."""
