"""Working with the stack's stores: reading resources back from its registry, and its lazily created tables."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from llama_stack_api import Datasets
from llama_stack_api.common.errors import ResourceNotFoundError
from llama_stack_api.datasets.models import GetDatasetRequest

from llama_stack_judge.errors import JudgeNotFoundError


async def from_registry[T](
    provider: object, store_attribute: str, get: Callable[[Any], Awaitable[T]], unknown: Exception
) -> T:
    """``get(store)`` on the provider's registry store; ``unknown`` when there is no store or no such resource."""
    store = getattr(provider, store_attribute, None)  # set by the stack's routing table
    if store is None:
        raise unknown
    try:
        return await get(store)
    except ValueError:
        raise unknown from None


async def check_readable(datasets: Datasets, dataset_id: str, *, where: str) -> None:
    """Refuse a dataset the current user may not read, as one that does not exist.

    The datasets registry applies the stack's access policy; the datasetio ``iterrows`` that reads rows does not,
    so this check comes before any row is read.
    """
    try:
        await datasets.get_dataset(GetDatasetRequest(dataset_id=dataset_id))
    except (ValueError, ResourceNotFoundError) as exc:
        raise JudgeNotFoundError(f"{where}: dataset {dataset_id}: {exc}") from None


class FirstUseGuard:
    """Runs ``probe`` once, alone, before anything else uses a store.

    The stack's SQL store creates its tables lazily on the first operation and without a lock, so concurrent first
    operations fail with "no such table"; one operation awaited on its own creates them.
    """

    def __init__(self, probe: Callable[[], Awaitable[object]]) -> None:
        self._probe = probe
        self._lock = asyncio.Lock()
        self._done = False

    async def __call__(self) -> None:
        """Return once the probe has run."""
        if self._done:
            return
        async with self._lock:
            if not self._done:
                await self._probe()
                self._done = True
