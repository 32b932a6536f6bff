"""Entry point for llama-stack: ``module: llama_stack_judge`` in a run config imports this module."""

from llama_stack_api import Api, InlineProviderSpec, ProviderSpec

from llama_stack_judge.names import EVAL_PROVIDER_TYPE, SCORING_PROVIDER_TYPE, SCRIPTED_PROVIDER_TYPE


def get_provider_spec() -> list[ProviderSpec]:
    """One spec per API, each with its own provider_type (the stack keeps the one a run config names)."""
    return [
        InlineProviderSpec(
            api=Api.scoring,
            provider_type=SCORING_PROVIDER_TYPE,
            module="llama_stack_judge.scoring",
            config_class="llama_stack_judge.scoring.config.JudgeScoringConfig",
            api_dependencies=[Api.inference, Api.models],
            optional_api_dependencies=[Api.datasetio, Api.datasets],
            description="LLM-as-judge scoring: shipped and registered judge definitions, concurrent judging.",
        ),
        InlineProviderSpec(
            api=Api.eval,
            provider_type=EVAL_PROVIDER_TYPE,
            module="llama_stack_judge.eval",
            config_class="llama_stack_judge.eval.config.JudgeEvalConfig",
            api_dependencies=[Api.inference, Api.scoring, Api.datasetio, Api.datasets],
            description="Eval jobs in the background: generate with a candidate model, then score.",
        ),
        InlineProviderSpec(
            api=Api.inference,
            provider_type=SCRIPTED_PROVIDER_TYPE,
            module="llama_stack_judge.scripted",
            config_class="llama_stack_judge.scripted.config.ScriptedInferenceConfig",
            description="A deterministic scripted model for tests and CI (replies come from rules).",
        ),
    ]
