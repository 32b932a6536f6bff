"""Statements on a stack SQL store's own engine, for what its API cannot express.

The store's ``update`` takes equalities only and does not say how many rows it changed; leases need conditions (a
lease that ran out, a job still unfinished) and to know whether the update took. Its ``upsert`` takes one row at a
time, a transaction each.
"""

from collections.abc import Mapping, Sequence
from typing import Any, cast

from llama_stack.core.storage.sqlstore.sqlalchemy_sqlstore import SqlAlchemySqlStoreImpl
from sqlalchemy import CursorResult
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

_MAX_BOUND_PARAMETERS = 999  # sqlite's oldest limit, the lowest of the databases a store may be on


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


async def upsert_all(
    store: SqlAlchemySqlStoreImpl, table_name: str, rows: Sequence[Mapping[str, Any]], *, key: str
) -> None:
    """Insert ``rows``, replacing the other columns of those whose ``key`` is stored already, in one transaction."""
    table = store.metadata.tables[table_name]
    per_statement = _MAX_BOUND_PARAMETERS // len(table.columns)
    async with session(store) as transaction:
        dialect = postgresql if transaction.get_bind().dialect.name == "postgresql" else sqlite
        for start in range(0, len(rows), per_statement):
            statement = dialect.insert(table).values(list(rows[start : start + per_statement]))
            replaced = {column.name: statement.excluded[column.name] for column in table.columns if column.name != key}
            await transaction.execute(statement.on_conflict_do_update(index_elements=[table.c[key]], set_=replaced))
        await transaction.commit()
