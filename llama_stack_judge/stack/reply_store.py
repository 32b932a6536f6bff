"""The judgment cache, kept in a table of one of the stack's SQL stores.

A SQL store rather than the kvstore: the kvstore API has no batch operations and its sqlite backend opens a
connection per key, which cost ~4 ms of CPU per judgment here; a SQL store reads and writes a batch at once.
"""

from collections.abc import Mapping, Sequence

from llama_stack.core.storage.datatypes import SqlStoreReference
from llama_stack.core.storage.sqlstore.sqlstore import sqlstore_impl
from llama_stack_api.internal.sqlstore import ColumnDefinition, ColumnType, SqlStore
from sqlalchemy.exc import IntegrityError

from llama_stack_judge.core.cache import decode_reply, encode_reply
from llama_stack_judge.core.chat import ChatReply
from llama_stack_judge.stack.registry import FirstUseGuard

_LOOKUP_CHUNK = 500  # keys per query, well under every database's bound-parameter limit


class SqlReplyCache:
    """Judge replies keyed by request hash in a stack SQL store (sqlite or postgres, as configured)."""

    def __init__(self, store: SqlStore, table: str) -> None:
        self._store = store
        self._table = table
        self._ready = FirstUseGuard(lambda: store.fetch_all(table, limit=1))

    @classmethod
    async def open(cls, reference: SqlStoreReference) -> "SqlReplyCache":
        """The cache in ``reference``'s backend and table, creating the table when needed."""
        store = sqlstore_impl(reference)
        await store.create_table(
            reference.table_name,
            {"key": ColumnDefinition(type=ColumnType.STRING, primary_key=True), "reply": ColumnType.TEXT},
        )
        return cls(store, reference.table_name)

    async def get_many(self, keys: Sequence[str]) -> dict[str, ChatReply]:
        """The stored replies among ``keys``."""
        await self._ready()
        found: dict[str, ChatReply] = {}
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start : start + _LOOKUP_CHUNK]
            names = [f"k{i}" for i in range(len(chunk))]
            rows = await self._store.fetch_all(
                self._table,
                where_sql=f"key IN ({', '.join(':' + name for name in names)})",
                where_sql_params=dict(zip(names, chunk, strict=True)),
            )
            for row in rows.data:
                reply = decode_reply(row["reply"])
                if reply is not None:
                    found[row["key"]] = reply
        return found

    async def put_many(self, replies: Mapping[str, ChatReply]) -> None:
        """Store ``replies`` in one insert; keys stored meanwhile by another call are replaced one by one."""
        await self._ready()
        rows = [{"key": key, "reply": encode_reply(reply)} for key, reply in replies.items()]
        try:
            await self._store.insert(self._table, rows)
        except IntegrityError:
            for row in rows:
                await self._store.upsert(self._table, row, conflict_columns=["key"])
