"""What evalcast does with its own errors: one policy, one context manager, every error path.

Training must never stop because of evalcast. Every place where evalcast's own code could fail inside a
training process runs under :meth:`ErrorPolicy.guard`: the exception is logged with its traceback and
kept on the returned :class:`Failure` (so the caller can skip the save, record the part that failed or
fall back), and with ``strict=True`` it is re-raised. Where a re-raise must wait (the ranks of a job
have to agree on the checkpoint first, or they would hang) or must not happen (an optional part, such
as an anchor, whose failure is recorded), ``reraise=False`` leaves it on the :class:`Failure` and the
caller decides.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

logger = logging.getLogger("evalcast")


@dataclass
class Failure:
    """The outcome of a guarded block: ``error`` is the exception it raised, None when it succeeded."""

    error: BaseException | None = None

    def __bool__(self) -> bool:
        return self.error is not None

    @property
    def message(self) -> str:
        """``"TypeName: message"`` of the error (empty when there was none)."""
        return "" if self.error is None else f"{type(self.error).__name__}: {self.error}"


@dataclass(frozen=True)
class ErrorPolicy:
    """Log evalcast's own errors and carry on, or re-raise them (``strict``: for tests and debugging)."""

    strict: bool = False

    @contextmanager
    def guard(self, what: str, *, reraise: bool = True, level: int = logging.ERROR) -> Iterator[Failure]:
        """Run the block; an ``Exception`` in it is logged as "evalcast: <what> failed" with its traceback.

        reraise: re-raise it here when strict (False: never here; the caller decides).
        level: the log level (an optional extra that failed may log below ERROR).
        """
        failure = Failure()
        try:
            yield failure
        except Exception as exc:
            failure.error = exc
            logger.log(level, "evalcast: %s failed.", what, exc_info=True)
            if self.strict and reraise:
                raise
