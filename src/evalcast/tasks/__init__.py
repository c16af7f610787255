"""Synthetic reasoning tasks with worked solutions, their training corpus and negatives, and real-set loaders.

Families (``TASKS``): ``add`` (column addition/subtraction), ``sort`` (selection sort of digits),
``chain`` (variable-binding chains), and the multiple-choice family ``mc_add`` (``CHOICE_TASKS``). Every
open-ended solution ends in ``#### <answer>``; every record carries
``meta["difficulty"]`` (1..5). Held-out questions are a fixed hash-based share of each family and never
appear in the training corpus.
"""

from evalcast.tasks.base import CHARSET, HOLDOUT_FRACTION, LEVELS, TaskFamily, Worked, is_heldout, split_of
from evalcast.tasks.corpus import (
    PLAIN,
    MixSchedule,
    training_batch,
    training_records,
    training_stream,
    training_text,
    training_texts,
)
from evalcast.tasks.negatives import CATEGORIES, attach_negatives, make_negatives
from evalcast.tasks.real import GSM8K_NEGATIVES, humaneval_program, load_gsm8k, load_humaneval, strip_calculator
from evalcast.tasks.registry import CHOICE_TASKS, TASKS, get_task, write_task_suite

__all__ = [
    "CATEGORIES", "CHARSET", "CHOICE_TASKS", "GSM8K_NEGATIVES", "HOLDOUT_FRACTION", "LEVELS", "PLAIN", "TASKS",
    "MixSchedule", "TaskFamily", "Worked", "attach_negatives", "get_task", "humaneval_program", "is_heldout",
    "load_gsm8k", "load_humaneval", "make_negatives", "split_of", "strip_calculator", "training_batch",
    "training_records", "training_stream", "training_text", "training_texts", "write_task_suite",
]
