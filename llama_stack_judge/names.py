"""What this package is called in a stack: its provider types, and the namespace of its scoring functions."""

SCORING_PROVIDER_TYPE = "inline::judge-scoring"
EVAL_PROVIDER_TYPE = "inline::judge-eval"
SCRIPTED_PROVIDER_TYPE = "inline::scripted-judge"
PREFIX = "judge"  # scoring function ids are "judge::<name>"
