"""Expert sets: rows → validated records → token ids with frozen weights → length-bucketed batches."""

from evalcast.data.batching import BatchPlan, plan_batches
from evalcast.data.evaluation import load_evaluation
from evalcast.data.expert_set import BuildReport, ExpertSet
from evalcast.data.files import load_records, write_jsonl
from evalcast.data.formatting import PromptConfig, render_prompt
from evalcast.data.records import ExpertRecord, ExpertSetError, FieldMap, Negative
from evalcast.data.table import EVAL, EXPERT, NEGATIVE, TokenTable
from evalcast.data.tokenize import TokenizeConfig
from evalcast.data.weights import BASE_WEIGHTINGS, DEFAULT_WEIGHTING

__all__ = [
    "BASE_WEIGHTINGS", "DEFAULT_WEIGHTING", "EVAL", "EXPERT", "NEGATIVE", "BatchPlan", "BuildReport", "ExpertRecord",
    "ExpertSet", "ExpertSetError", "FieldMap", "Negative", "PromptConfig", "TokenTable", "TokenizeConfig",
    "load_evaluation", "load_records", "plan_batches", "render_prompt", "write_jsonl",
]
