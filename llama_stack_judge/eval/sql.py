"""Statements on a stack SQL store's own engine, for what its API cannot express.

The store's ``update`` takes equalities only and does not say how many rows it changed; leases need conditions (a
lease that ran out, a job still unfinished) and to know whether the update took.
"""

from typing import Any, cast

from llama_stack.core.storage.sqlstore.sqlalchemy_sqlstore import SqlAlchemySqlStoreImpl
from sqlalchemy import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession


def session(store: SqlAlchemySqlStoreImpl) -> AsyncSession:
    """A session on the store's engine (which its first operation created)."""
    assert store.async_session is not None
    return store.async_session()


async def changed(store: SqlAlchemySqlStoreImpl, statement: Any) -> int:
    """Run one update statement in a transaction of its own; how many rows it changed."""
    async with session(store) as transaction:
        result = await transaction.execute(statement)
        await transaction.commit()
    return cast(CursorResult[Any], result).rowcount  # an UPDATE's result is a cursor result
