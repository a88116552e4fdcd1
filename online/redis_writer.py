"""Writes `OnlineRow`s to Feast's Redis online store, newest change point wins.

Rows land in the hashes Feast's `RedisOnlineStore` reads (see `online.feast_layout`).
A call's rows go out as EVALSHA calls of a Lua script that, per entity hash, compares
the row's valid_from with the `_vf:<view>` field already there and writes the view's
fields only if the row is not older. Feast's own writer does a read, then a write, from
the client; the script makes the check and the write atomic, so concurrent writers
(the stream and a backfill) cannot interleave an older row over a newer one. An equal
valid_from is written again (the later of two such rows wins), so retries and replays
are idempotent.

The script calls of one write are packed first (`prepare_encoded`), then sent on one
connection together (`RedisWrite.start`), and their replies read later
(`RedisWrite.result`): the sink builds its next write while Redis runs this one, and
starts it after this one answered, so its writes reach Redis in order. The calls are packed by
`online.resp` (each row's arguments framed at a look-up each), not by redis-py's
`pack_command`, which cost as much as the rest of a row's write; the entity keys come
serialized from the encoder (`EncodedRow.entity_key`), so a key is the serialized key
and the project's name.

Rows written by Feast's own materialization carry no `_vf:<view>` and count as older.
Redis Cluster is refused for now: one script call takes many keys, which a cluster
only allows within one hash slot. Every connection has bounded connect and read
timeouts (`online.redis_settings.RedisTimeouts`; a connection string may set its own,
`host:port,socket_timeout=5`), so a hung server fails the write after the retries.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat

from feast import FeatureView, RepoConfig
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig, RedisType
from google.protobuf.timestamp_pb2 import Timestamp
from redis import Redis
from redis import exceptions as redis_errors
from redis.backoff import NoBackoff
from redis.connection import Connection
from redis.retry import Retry

from feature_store.errors import ConfigError
from online.entity_keys import require_key_version
from online.feast_layout import RedisViewLayout, redis_view_layout
from online.redis_settings import RedisSecurity, RedisTimeouts
from online.resp import command
from online.rows import (
    EncodedRow,
    OnlineRow,
    RowEncoder,
    ValueConversionError,
    newest_per_key,
)
from online.write_support import RetryPolicy, WriteStats, call_with_retry

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_VIEW = operator.attrgetter("view")
_ENTITY_KEY = operator.attrgetter("entity_key")
_VALID_FROM = operator.attrgetter("valid_from")
_VALUES = operator.attrgetter("values")

_TRANSIENT = (
    redis_errors.ConnectionError,  # includes BusyLoadingError
    redis_errors.TimeoutError,
    redis_errors.TryAgainError,
    redis_errors.ReadOnlyError,  # a replica promoted mid-failover
)

_FIELDS_PER_HSET = 60  # a Lua function call takes at most ~250 arguments


def newer_wins_script(features: int) -> str:
    """The Lua script writing rows of a view with `features` features, newest wins.

    KEYS: one entity hash per row. ARGV: valid_from field, event-ts field, TTL seconds
    (0: none), the feature fields, then per row: valid_from (integer microseconds),
    event ts (serialized Timestamp), the serialized ValueProtos. The HSET calls are
    spelled out for the view's width: no per-row table building in Lua.
    """
    base, stride = 3 + features, 2 + features
    pairs = [f"ARGV[{3 + j}], ARGV[at + {2 + j}]" for j in range(1, features + 1)]
    per_call = _FIELDS_PER_HSET
    calls = [", ".join(["vf_field, ARGV[at + 1], ts_field, ARGV[at + 2]", *pairs[:per_call]])]
    calls += [", ".join(pairs[i : i + per_call]) for i in range(per_call, features, per_call)]
    hsets = "\n    ".join(f"redis.call('HSET', KEYS[i], {args})" for args in calls)
    return f"""
local vf_field, ts_field, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local written = 0
for i = 1, #KEYS do
  local at = {base} + (i - 1) * {stride}
  local held_vf = tonumber(redis.call('HGET', KEYS[i], vf_field))
  -- A stored valid_from counts only while Feast's event-ts field is there too: Feast
  -- deletes its own fields, not ours, when it drops a view. Asked only of a row
  -- that would otherwise be older (a newer row is one HGET and one HSET).
  if not held_vf or held_vf <= tonumber(ARGV[at + 1])
      or redis.call('HEXISTS', KEYS[i], ts_field) == 0 then
    {hsets}
    if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
    written = written + 1
  end
end
return written
"""


ScriptCall = bytes
"""One EVALSHA call, packed."""


class RedisOnlineWriter:
    """Newer-wins, idempotent, batched writer of rows Feast's Redis store reads."""

    store = "redis"

    def __init__(
        self,
        repo_config: RepoConfig,
        connection: str | None = None,
        *,
        feature_views: Sequence[FeatureView],
        retry: RetryPolicy | None = None,
        rows_per_script: int = 128,
        timeouts: RedisTimeouts | None = None,
        security: RedisSecurity | None = None,
    ) -> None:
        """`connection`: a `redis://` URL or a Feast connection string (`host:port,db=0`);
        by default the repo config's own Redis online store. `rows_per_script` rows go
        in one script call: small calls let Redis start on a write's first rows sooner."""
        if rows_per_script < 1:
            msg = f"rows_per_script must be positive, got {rows_per_script}"
            raise ConfigError(msg)
        require_key_version(repo_config, "Redis online writer")
        self._project = repo_config.project.encode("utf-8")
        self._encoder = RowEncoder(feature_views)
        self._layouts = {view.name: redis_view_layout(repo_config, view) for view in feature_views}
        self._retry = retry or RetryPolicy()
        self._rows_per_script = rows_per_script
        self._client, self.target, self._ttl = connect_redis(
            repo_config, connection, timeouts or RedisTimeouts(), security
        )
        widths = {len(layout.feature_fields) for layout in self._layouts.values()}
        self._scripts = {n: self._client.register_script(newer_wins_script(n)) for n in widths}
        self._ttl_arg = b"%d" % self._ttl

    def write(self, rows: Sequence[OnlineRow]) -> WriteStats:
        return self.write_encoded(self._encoder.encode_all(rows))

    def write_encoded(self, rows: Sequence[EncodedRow]) -> WriteStats:
        """Writes the newest row per view and entity key."""
        prepared = self.prepare_encoded(rows)
        prepared.start()
        return prepared.result()

    def prepare_encoded(self, rows: Sequence[EncodedRow]) -> RedisWrite:
        """The newest row per view and entity key, packed in script calls, not sent.
        An unknown view fails here, before anything is sent."""
        newest = _newest(rows)
        calls = list(self._script_calls(self._by_view(newest)))
        return RedisWrite(self, calls, rows=len(rows), newest=len(newest))

    def close(self) -> None:
        self._client.close()

    def _send(self, calls: Sequence[ScriptCall], *, reload_scripts: bool = True) -> int:
        """One attempt of a write from the start, on a connection of its own."""
        connection = self._sent(calls)
        return self._replies(connection, calls, reload_scripts=reload_scripts)

    def _sent(self, calls: Sequence[ScriptCall]) -> Connection:
        """A connection from the pool with `calls` sent on it, their replies not read
        (dropped on any failure)."""
        connection = self._client.connection_pool.get_connection()
        try:
            connection.send_packed_command(calls)
        except BaseException:
            self._release(connection, broken=True)
            raise
        return connection

    def _replies(
        self, connection: Connection, calls: Sequence[ScriptCall], *, reload_scripts: bool = True
    ) -> int:
        """Rows written, from the replies to `calls` sent on `connection`, which goes
        back to the pool (dropped on any failure, with the replies not read). A server
        that forgot its scripts (restarted or flushed) gets them again, and the calls,
        once."""
        try:
            written = sum([int(connection.read_response()) for _ in calls])
        except redis_errors.NoScriptError:
            self._release(connection, broken=True)
            if not reload_scripts:
                raise
            for script in self._scripts.values():
                # The server names a script by its SHA-1, so `script.sha` stays right.
                self._client.script_load(script.script)
            return self._send(calls, reload_scripts=False)
        except BaseException:
            self._release(connection, broken=True)
            raise
        self._release(connection, broken=False)
        return written

    def _release(self, connection: Connection, *, broken: bool) -> None:
        if broken:
            connection.disconnect()
        self._client.connection_pool.release(connection)

    def _by_view(self, rows: Sequence[EncodedRow]) -> dict[str, Sequence[EncodedRow]]:
        by_view: dict[str, Sequence[EncodedRow]]
        views = set(map(_VIEW, rows))
        if len(views) == 1:
            by_view = {views.pop(): rows}
        else:
            grouped: dict[str, list[EncodedRow]] = {}
            for row in rows:
                grouped.setdefault(row.view, []).append(row)
            by_view = dict(grouped)
        for view in by_view:
            self._layout(view)  # an unknown view fails before anything is sent
        return by_view

    def _script_calls(self, by_view: dict[str, Sequence[EncodedRow]]) -> Iterator[ScriptCall]:
        """Packed calls of the script: KEYS the rows' hashes, ARGV the view's fields
        (see `newer_wins_script`), then per row its stamps and values. Each piece is
        made for all the rows of a view at once, in C where it can be."""
        for view, rows in by_view.items():
            layout = self._layout(view)
            width = len(layout.feature_fields)
            sha = self._scripts[width].sha.encode()
            head = [layout.valid_from_field, layout.event_ts_field, self._ttl_arg]
            head += layout.feature_fields
            # `redis_key_of` each row's serialized key
            keys = list(map(bytes.__add__, map(_ENTITY_KEY, rows), repeat(self._project)))
            # each row's arguments (its two stamps, then its values), row after row,
            # laid out by slice assignment: no object a row
            stride = 2 + width
            row_args: list[bytes] = [b""] * (len(rows) * stride)
            row_args[0::stride], row_args[1::stride] = event_stamps(list(map(_VALID_FROM, rows)))
            values = list(chain.from_iterable(map(_VALUES, rows)))
            if len(values) != len(rows) * width:
                msg = f"rows of `{view}` must hold {width} values each, got {len(values)} in all"
                raise ValueConversionError(msg)
            for j in range(width):
                row_args[2 + j :: stride] = values[j::width]
            for start in range(0, len(rows), self._rows_per_script):
                end = min(start + self._rows_per_script, len(rows))
                args = [b"EVALSHA", sha, b"%d" % (end - start), *keys[start:end], *head]
                args += row_args[start * stride : end * stride]
                yield command(args)

    def _layout(self, view: str) -> RedisViewLayout:
        layout = self._layouts.get(view)
        if layout is None:
            msg = f"unknown feature view `{view}`; known: {sorted(self._layouts)}"
            raise ValueConversionError(msg)
        return layout


def event_stamps(valid_froms: Sequence[datetime]) -> tuple[list[bytes], list[bytes]]:
    """Each valid_from in integer microseconds (decimal digits), and serialized as the
    `Timestamp` Feast keeps in `_ts:<view>` (what `Timestamp.FromDatetime` gives, at
    half the cost). Aware UTC datetimes (what `OnlineRow` holds)."""
    micros = list(
        map(operator.floordiv, map(operator.sub, valid_froms, repeat(_EPOCH)), repeat(_US))
    )
    digits = list(map(b"%d".__mod__, micros))
    stamps = []
    stamp = Timestamp()  # set and serialized again for each: half the cost of a new one
    for seconds, rest in map(divmod, micros, repeat(1_000_000)):
        stamp.seconds = seconds
        stamp.nanos = rest * 1000
        stamps.append(stamp.SerializeToString())
    return digits, stamps


def _newest(rows: Sequence[EncodedRow]) -> Sequence[EncodedRow]:
    """The newest row per view and entity key (`newest_per_key`); the rows themselves
    when no two share an entity key (the sink coalesced them already; a set of the
    keys, bytes, is cheaper than one of (view, key) pairs)."""
    if len(set(map(_ENTITY_KEY, rows))) == len(rows):
        return rows
    return list(newest_per_key(((row.view, row.entity_key), row) for row in rows).values())


class RedisWrite:
    """A `PreparedWrite` of the Redis writer: its script calls, packed.

    `start` sends them on a connection of its own from the client's pool; `result`
    reads the replies (the first attempt) and retries the whole write on a transient
    failure, as `write_encoded` does. Writes of one caller reach Redis in order when the
    caller starts each after the result of the one before, as the sink does; the
    writer itself may be shared by threads (one per bundle), each with its own write.
    """

    def __init__(
        self, writer: RedisOnlineWriter, calls: list[ScriptCall], *, rows: int, newest: int
    ) -> None:
        self._writer = writer
        self._calls = calls
        self._rows = rows
        self._newest = newest
        self._connection: Connection | None = None
        self._send_error: Exception | None = None
        self._started = False

    def start(self) -> None:
        if self._started:
            msg = f"this write of {self._rows} rows to {self._writer.target} was started already"
            raise RuntimeError(msg)
        self._started = True
        if not self._calls:
            return
        try:
            self._connection = self._writer._sent(self._calls)
        except Exception as err:  # the first attempt failed: `result` retries
            self._send_error = err

    def result(self) -> WriteStats:
        if not self._started:
            self.start()
        if not self._calls:
            return WriteStats(store=self._writer.store, rows=self._rows)
        calls = self._calls
        written, retries = call_with_retry(
            lambda: self._writer._send(calls),
            policy=self._writer._retry,
            is_transient=lambda err: isinstance(err, _TRANSIENT),
            target=self._writer.target,
            first_attempt=self._first_attempt,
        )
        stats = WriteStats(
            store=self._writer.store,
            rows=self._rows,
            coalesced=self._rows - self._newest,
            written=written,
            stale=self._newest - written,
            retries=retries,
        )
        logger.debug("wrote to %s: %s", self._writer.target, stats)
        return stats

    def abandon(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._writer._release(connection, broken=True)

    def _first_attempt(self) -> int:
        connection, self._connection = self._connection, None
        if connection is None:
            error = self._send_error or redis_errors.ConnectionError("the write was not sent")
            raise error
        return self._writer._replies(connection, self._calls)


def connect_redis(
    config: RepoConfig,
    connection: str | None,
    timeouts: RedisTimeouts | None = None,
    security: RedisSecurity | None = None,
) -> tuple[Redis, str, int]:
    """A client, a description of where it points (no credentials), and the key TTL.

    Feast connection strings go through Feast's own client factory, so they mean here
    what they mean to Feast's reader. The client's own retries are switched off: the
    writer's `RetryPolicy` is the one place that retries, and counts.
    """
    if connection is not None and "://" in connection:
        client = Redis.from_url(connection)
        kwargs = client.connection_pool.connection_kwargs
        target = f"redis at {kwargs.get('host', kwargs.get('path'))}:{kwargs.get('port', '')}"
        online = config.online_store
        ttl = online.key_ttl_seconds if isinstance(online, RedisOnlineStoreConfig) else None
    else:
        store_config = _store_config(config, connection)
        nodes, _ = RedisOnlineStore._parse_connection_string(store_config.connection_string)
        target = "redis at " + ",".join(f"{n['host']}:{n.get('port', '')}" for n in nodes)
        client = RedisOnlineStore()._get_client(store_config)
        ttl = store_config.key_ttl_seconds
    client.set_retry(Retry(NoBackoff(), 0))
    (timeouts or RedisTimeouts()).apply(client.connection_pool.connection_kwargs)
    (security or RedisSecurity()).apply(client.connection_pool)
    return client, target, int(ttl or 0)


def _store_config(config: RepoConfig, connection: str | None) -> RedisOnlineStoreConfig:
    online = config.online_store
    if isinstance(online, RedisOnlineStoreConfig):
        store = online
        if connection is not None:
            store = online.model_copy(update={"connection_string": connection})
    elif connection is None:
        msg = (
            f"online store of project `{config.project}` is {online.type!r}, not redis; "
            "pass a redis connection"
        )
        raise ConfigError(msg)
    else:
        store = RedisOnlineStoreConfig(connection_string=connection)
    if store.redis_type == RedisType.redis_cluster:
        msg = f"redis_type {store.redis_type.value!r} is not supported by the online writer"
        raise ConfigError(msg)
    return store
