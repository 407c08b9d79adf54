"""The resolution index in Redis: one MGET per look-up batch, one pipeline per write batch.

Why Redis: with several Bytewax processes every worker must see the same
facts (which customer owns INV-4711, which account paid last time). Keys are
the index's own (`ref:...`, `ext:...`) under a prefix; names and aliases are
also kept in one hash so the fuzzy pass can list them without a SCAN. That list
is cached per process and refreshed at most every `names_ttl_s` seconds or
right after this process wrote a name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import redis

from arrecon.state.index import NAME_PREFIX, IndexStore

__all__ = ["RedisStore", "redis_store_factory"]


class RedisStore:
    """`IndexStore` over a Redis server."""

    def __init__(
        self,
        client: redis.Redis[bytes],
        prefix: str = "arrecon:idx:",
        names_ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.names_key = f"{prefix}__names__"
        self.names_ttl_s = names_ttl_s
        self.clock = clock
        self._names: list[tuple[str, str]] = []
        self._names_loaded_at: float | None = None
        self.round_trips = 0

    def get_many(self, keys: Sequence[str]) -> list[str | None]:
        if not keys:
            return []
        self.round_trips += 1
        values = self.client.mget([self.prefix + key for key in keys])
        return [None if value is None else value.decode() for value in values]

    def set_many(self, items: Mapping[str, str]) -> None:
        if not items:
            return
        self.round_trips += 1
        pipe = self.client.pipeline(transaction=False)
        pipe.mset({self.prefix + key: value for key, value in items.items()})
        names: dict[str | bytes, bytes | float | int | str] = {
            key: value for key, value in items.items() if key.startswith(NAME_PREFIX)
        }
        if names:
            pipe.hset(self.names_key, mapping=names)
            self._names_loaded_at = None
        pipe.execute()

    def names(self) -> Sequence[tuple[str, str]]:
        now = self.clock()
        if self._names_loaded_at is None or now - self._names_loaded_at > self.names_ttl_s:
            self.round_trips += 1
            raw = self.client.hgetall(self.names_key)
            self._names = sorted(
                (_alias(key.decode()), value.decode()) for key, value in raw.items()
            )
            self._names_loaded_at = now
        return self._names


def _alias(name_key: str) -> str:
    return name_key[len(NAME_PREFIX) :].rpartition("|")[0]


def redis_store_factory(url: str, prefix: str = "arrecon:idx:") -> Callable[[], IndexStore]:
    """A picklable-free factory: each worker connects on its own."""

    def build() -> IndexStore:
        client: redis.Redis[bytes] = redis.Redis.from_url(url)
        return RedisStore(client, prefix=prefix)

    return build
