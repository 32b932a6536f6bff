"""Working with the stack's stores: reading resources back from its registry, and its lazily created tables."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from llama_stack_api import DatasetIO, Datasets, IterRowsRequest, PaginatedResponse
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


async def read_rows(datasetio: DatasetIO, datasets: Datasets, request: IterRowsRequest) -> PaginatedResponse:
    """Rows of a dataset, also of one registered through another replica of the stack since this one started.

    Such a dataset is in the registry store but not in this replica's memory: the stack's routing knows only its
    in-memory registry ("not served", a ``ValueError``), and the ``localfs`` datasetio provider only the datasets
    registered through its own process (a ``KeyError``). Reading the dataset through the registry fills the first;
    handing it to its provider, as a registration would, the second.
    """
    try:
        return await datasetio.iterrows(request)
    except (KeyError, ValueError):
        dataset = await datasets.get_dataset(GetDatasetRequest(dataset_id=request.dataset_id))
    try:
        return await datasetio.iterrows(request)
    except KeyError:
        routing_table = getattr(datasetio, "routing_table", None)
        if routing_table is None:
            raise
        provider = await routing_table.get_provider_impl(request.dataset_id)
        await provider.register_dataset(dataset)
        return await datasetio.iterrows(request)


class RoutingTableSlot:
    """The attribute through which the stack hands a provider its routing table (``benchmark_store``, say).

    llama-stack 0.7.3 routes a request by its registry's in-memory cache alone, which other processes' registrations
    do not reach until the next listing refreshes it: with several replicas on one store, a scoring function or
    benchmark registered through one replica is "not served" by the others. When the stack sets the table, this makes
    its ``get_provider_impl`` read the registry store on a miss before refusing (later llama-stack releases do so
    themselves).
    """

    def __init__(self, resource_type: str) -> None:
        self._resource_type = resource_type

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = f"_{name}"

    def __get__(self, provider: object, owner: type | None = None) -> Any:
        return None if provider is None else getattr(provider, self._name, None)

    def __set__(self, provider: object, table: Any) -> None:
        setattr(provider, self._name, table)
        registry = getattr(table, "dist_registry", None)
        if registry is None or getattr(table, "_reads_through", False):
            return
        cached_only = table.get_provider_impl
        resource_type = self._resource_type

        async def get_provider_impl(routing_key: str, provider_id: str | None = None) -> Any:
            try:
                return await cached_only(routing_key, provider_id)
            except ValueError:
                if await registry.get(resource_type, routing_key) is None:  # a miss fills the cache from the store
                    raise
                return await cached_only(routing_key, provider_id)

        table.get_provider_impl = get_provider_impl
        table._reads_through = True


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
