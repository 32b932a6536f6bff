"""Reading a resource back from the stack's registry, which the routing tables hand to providers."""

from collections.abc import Awaitable, Callable
from typing import Any


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
