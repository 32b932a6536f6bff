"""Scripted inference provider: a deterministic stand-in model behind the stack's inference API."""

from typing import Any

from llama_stack_judge.scripted.config import ScriptedInferenceConfig


async def get_provider_impl(config: ScriptedInferenceConfig, deps: dict[Any, Any]) -> Any:
    """Build the provider (called by llama-stack)."""
    from llama_stack_judge.scripted.inference import ScriptedInferenceImpl

    impl = ScriptedInferenceImpl(config)
    await impl.initialize()
    return impl
