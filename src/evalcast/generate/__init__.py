"""Anchor evaluations: batched generation, scorers (exact match, numeric, sandboxed code), pass@k."""

from evalcast.generate.decode import DecodeConfig, Generation, encode_prompt, generate_completions, truncate_at_stop
from evalcast.generate.evaluate import (
    GenerativeResult,
    QuestionResult,
    TaskSummary,
    evaluate_generative,
    summarize_tasks,
)
from evalcast.generate.passk import pass_at_k
from evalcast.generate.sandbox import (
    SandboxConfig,
    SandboxError,
    SandboxResult,
    run_program,
    run_programs,
    sandbox_layers,
)
from evalcast.generate.scorers import (
    GSM8K_PATTERN,
    CodeExecutionScorer,
    ExactMatchScorer,
    NumericScorer,
    Scorer,
    ScoreResult,
    extract_answer,
    is_code_record,
    normalize_answer,
    parse_number,
)
from evalcast.generate.select import (
    CallableScorer,
    ScorerSpec,
    as_scorer,
    check_scorer_spec,
    check_scorer_tasks,
)

__all__ = [
    "GSM8K_PATTERN",
    "CallableScorer",
    "CodeExecutionScorer",
    "DecodeConfig",
    "ExactMatchScorer",
    "Generation",
    "GenerativeResult",
    "NumericScorer",
    "QuestionResult",
    "SandboxConfig",
    "SandboxError",
    "SandboxResult",
    "ScoreResult",
    "Scorer",
    "ScorerSpec",
    "TaskSummary",
    "as_scorer",
    "check_scorer_spec",
    "check_scorer_tasks",
    "encode_prompt",
    "evaluate_generative",
    "extract_answer",
    "generate_completions",
    "is_code_record",
    "normalize_answer",
    "parse_number",
    "pass_at_k",
    "run_program",
    "run_programs",
    "sandbox_layers",
    "summarize_tasks",
    "truncate_at_stop",
]
