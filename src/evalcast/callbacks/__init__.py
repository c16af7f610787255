"""Thin framework adapters over :class:`evalcast.Monitor`, each imported on demand with its framework:
:class:`~evalcast.callbacks.transformers.TransformersCallback` (HF ``Trainer``),
:class:`~evalcast.callbacks.lightning.LightningCallback` (``lightning.Trainer``) and
:func:`~evalcast.callbacks.accelerate.evaluate_on_save_state` (Accelerate, plain loops)."""
