"""Judge cards kept in one of the stack's SQL stores, so a served stack certifies judges and shows their cards.

The eval provider files the card of each certification job; the scoring provider looks up the card of the judges
that made each score call and returns it with the aggregates. Both read the same table (and the cards shipped with
the package); a card is found by the key of its judges, as in the command line's ``CardBook``.
"""

import json
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llama_stack.core.storage.datatypes import SqlStoreReference
from llama_stack.core.storage.sqlstore.sqlstore import sqlstore_impl
from llama_stack_api.internal.sqlstore import ColumnDefinition, ColumnType, SqlStore

from llama_stack_judge.cardbook import SHIPPED_CARDS, CardBook, best_card, card_key
from llama_stack_judge.stack.registry import FirstUseGuard

DEFAULT_TABLE = "llama_stack_judge_cards"


def card_store_reference() -> SqlStoreReference:
    """The default store of cards: a table of the stack's ``sql_default`` backend, shared by both providers."""
    return SqlStoreReference(backend="sql_default", table_name=DEFAULT_TABLE)


class SqlCardBook:
    """Cards in a SQL table (one row each, keyed by id and indexed by judges' key), and the shipped ones.

    Without a store (``None``) it holds the shipped cards only and files none.
    """

    def __init__(
        self, store: SqlStore | None, table: str = DEFAULT_TABLE, *, shipped: Path | None = SHIPPED_CARDS
    ) -> None:
        self._store = store
        self._table = table
        # Read once: shipped cards do not change while the stack runs, and every score call looks them up.
        self._shipped = CardBook(None, shipped=shipped).cards()
        self._ready = FirstUseGuard(self._first_read)

    @classmethod
    async def open(cls, reference: SqlStoreReference, *, shipped: Path | None = SHIPPED_CARDS) -> "SqlCardBook":
        """The book in ``reference``'s backend and table, creating the table when needed."""
        store = sqlstore_impl(reference)
        await store.create_table(
            reference.table_name,
            {
                "card_id": ColumnDefinition(type=ColumnType.STRING, primary_key=True),
                "key": ColumnType.STRING,
                "kind": ColumnType.STRING,
                "date": ColumnType.STRING,
                "n_judgments": ColumnType.INTEGER,
                "card": ColumnType.TEXT,  # JSON text: cards hold nested figures and must come back as written
            },
        )
        return cls(store, reference.table_name, shipped=shipped)

    async def _first_read(self) -> None:
        assert self._store is not None  # only called with a store
        await self._store.fetch_all(self._table, limit=1)

    async def save(self, card: Mapping[str, Any]) -> str:
        """File ``card`` under the key of its judges; returns its id."""
        if self._store is None:
            raise ValueError("this book holds the shipped cards only")
        await self._ready()
        card_id = uuid.uuid4().hex
        await self._store.insert(
            self._table,
            {
                "card_id": card_id,
                "key": card_key(card["run"]["judges"]),
                "kind": str(card["kind"]),
                "date": str(card["run"]["date"]),
                "n_judgments": int(card.get("n_judgments") or 0),
                "card": json.dumps(card, ensure_ascii=False),
            },
        )
        return card_id

    async def cards(self) -> list[dict[str, Any]]:
        """Every card of the store and the shipped ones, newest first."""
        stored = await self._rows(None)
        return sorted(stored + self._shipped, key=lambda card: str(card["run"].get("date")), reverse=True)

    async def find(
        self, judges: Mapping[str, Mapping[str, Any]], *, turns: Sequence[int] | None = None
    ) -> dict[str, Any] | None:
        """The card of these judges with the most judgments (same turns first), if any; see ``best_card``."""
        if not judges:
            return None
        key = card_key(judges)
        shipped = (card for card in self._shipped if card["key"] == key)
        return best_card([*await self._rows(key), *shipped], turns=turns)

    async def _rows(self, key: str | None) -> list[dict[str, Any]]:
        if self._store is None:
            return []
        await self._ready()
        rows = await self._store.fetch_all(self._table, where=None if key is None else {"key": key})
        return [json.loads(row["card"]) | {"key": row["key"], "card_id": row["card_id"]} for row in rows.data]
