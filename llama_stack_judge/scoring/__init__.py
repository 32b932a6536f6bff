"""Judge scoring provider: score / score_batch and the scoring-function registry."""

from typing import Any

from llama_stack_api import Api

from llama_stack_judge.scoring.config import JudgeScoringConfig


async def get_provider_impl(config: JudgeScoringConfig, deps: dict[Api, Any]) -> Any:
    """Build the provider (called by llama-stack)."""
    from llama_stack_judge.scoring.scoring import JudgeScoringImpl

    impl = JudgeScoringImpl(
        config,
        inference_api=deps[Api.inference],
        models_api=deps[Api.models],
        datasetio_api=deps.get(Api.datasetio),
        datasets_api=deps.get(Api.datasets),
    )
    await impl.initialize()
    return impl
