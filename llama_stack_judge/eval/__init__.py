"""Judge eval provider: benchmarks, background eval jobs, evaluate_rows."""

from typing import Any

from llama_stack_api import Api

from llama_stack_judge.eval.config import JudgeEvalConfig


async def get_provider_impl(config: JudgeEvalConfig, deps: dict[Api, Any]) -> Any:
    """Build the provider (called by llama-stack)."""
    from llama_stack_judge.eval.eval import JudgeEvalImpl

    impl = JudgeEvalImpl(
        config,
        inference_api=deps[Api.inference],
        scoring_api=deps[Api.scoring],
        datasetio_api=deps[Api.datasetio],
        datasets_api=deps[Api.datasets],
    )
    await impl.initialize()
    return impl
