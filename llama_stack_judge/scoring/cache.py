"""The judgment cache kept in one of the stack's kvstore backends."""

from llama_stack_api.internal.kvstore import KVStore

from llama_stack_judge.core.cache import decode_reply, encode_reply
from llama_stack_judge.core.chat import ChatReply


class KVStoreReplyCache:
    """Judge replies keyed by request hash in a stack kvstore (sqlite, postgres, redis… as configured)."""

    def __init__(self, kvstore: KVStore) -> None:
        self._kvstore = kvstore

    async def get(self, key: str) -> ChatReply | None:
        """The stored reply for ``key``, if any."""
        stored = await self._kvstore.get(f"reply:{key}")
        return None if stored is None else decode_reply(stored)

    async def put(self, key: str, reply: ChatReply) -> None:
        """Store ``reply`` under ``key``."""
        await self._kvstore.set(f"reply:{key}", encode_reply(reply))
