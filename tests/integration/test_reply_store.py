"""The judgment cache's table on sqlite and on PostgreSQL: replies judged afresh replace the stored ones."""

from pathlib import Path
from typing import Any

import pytest
from llama_stack.core.storage.datatypes import PostgresSqlStoreConfig, SqliteSqlStoreConfig
from llama_stack.core.storage.sqlstore.sqlalchemy_sqlstore import SqlAlchemySqlStoreImpl

from llama_stack_judge.core.chat import ChatReply
from llama_stack_judge.stack.reply_store import SqlReplyCache
from tests.stacks import Backends

pytestmark = pytest.mark.integration


def sql_store(storage: Backends, tmp_path: Path) -> SqlAlchemySqlStoreImpl:
    if storage is None:
        return SqlAlchemySqlStoreImpl(SqliteSqlStoreConfig(db_path=str(tmp_path / "cache.db")))
    postgres: dict[str, Any] = {k: v for k, v in storage["sql_default"].items() if k != "type"}
    return SqlAlchemySqlStoreImpl(PostgresSqlStoreConfig(**postgres))


async def test_replies_judged_afresh_replace_the_stored_ones_and_new_keys_are_added(
    storage: Backends, tmp_path: Path
) -> None:
    cache = await SqlReplyCache.in_table(sql_store(storage, tmp_path), "judgments")
    await cache.put_many({f"k{n}": ChatReply(text=f"Rating: [[{n}]]") for n in range(3)})
    # Two keys stored before and one new, in one write (its insert fails on the old keys: then one upsert); more
    # rows than one statement takes, so that the upsert runs in parts.
    fresh = {f"k{n}": ChatReply(text=f"again [[{n}]]", finish_reason="stop") for n in range(1, 900)}
    await cache.put_many(fresh)
    stored = await cache.get_many([f"k{n}" for n in range(900)])
    assert stored == {"k0": ChatReply(text="Rating: [[0]]")} | fresh
