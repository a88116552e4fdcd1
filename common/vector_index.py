"""The multi-vector index of reviews: one point per review, one named vector per model.

Both jobs write it after the model stage (`WriteVectorIndex`), and `feature-store similar`
reads it. The index is Qdrant: its embedded local mode (a folder, the default for local
runs: no server to start) or a Qdrant server by URL (production, and `docker-compose`).

- A point's id is a UUID derived from the review id (`point_id`), so a re-delivered or
  re-computed review overwrites its own point: writing is idempotent, and the nightly
  backfill repairs the index exactly as it repairs the online stores.
- Each model's embedding is a named vector (`semantic`, `paraphrase`), compared by cosine;
  a query names the vector it searches by.
- The payload holds the review's keys and time, and its text cut to `TEXT_CHARS`, so a
  neighbour can be shown without another lookup.

Embedded mode locks its folder for one process: while a job writes it, read through a
server instead (`--qdrant-url`), or wait for the job to stop.
"""

from __future__ import annotations

import atexit
import logging
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import apache_beam as beam
from apache_beam.metrics.metric import Metrics

from common.beam_types import PColl, Transform

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

    from feature_store.config import PlatformConfig

log = logging.getLogger(__name__)

COLLECTION: Final = "reviews"
TEXT_CHARS: Final = 280
# Named vector -> the record field holding it (the derived fields of `review_content`).
VECTOR_FIELDS: Final[Mapping[str, str]] = {
    "semantic": "embedding_semantic",
    "paraphrase": "embedding_paraphrase",
}
_NAMESPACE: Final = uuid.UUID("6f1d3c52-2a0e-4d7b-9a47-8b6c1f0e5d21")
INDEX_DIR: Final = "vector_index"  # under the state folder (embedded mode)


class VectorIndexError(Exception):
    """The index cannot be opened or does not hold what was asked for."""


@dataclass(frozen=True, kw_only=True)
class IndexSettings:
    """Where the index lives: a folder (embedded mode) or a server URL, never both."""

    path: str | None = None
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    collection: str = COLLECTION
    dims: Mapping[str, int] = field(default_factory=lambda: {"semantic": 384, "paraphrase": 384})

    def __post_init__(self) -> None:
        if (self.path is None) == (self.url is None):
            msg = (
                "give the index a folder or a server URL, one of them "
                f"(path={self.path!r}, url={self.url!r})"
            )
            raise ValueError(msg)
        unknown = sorted(set(self.dims) - set(VECTOR_FIELDS))
        if unknown:
            msg = f"unknown vector name(s) {unknown}; known: {sorted(VECTOR_FIELDS)}"
            raise ValueError(msg)

    @property
    def where(self) -> str:
        return self.url or f"folder {self.path}"


def settings_for(config: PlatformConfig, api_key: str | None = None) -> IndexSettings | None:
    """The platform's index: its server when a URL is set, else the state folder's embedded
    index locally; None in production without a server (workers share no folder)."""
    if config.vector_index_url:
        return IndexSettings(url=config.vector_index_url, api_key=api_key)
    if config.local:
        return IndexSettings(path=str(config.state_dir / INDEX_DIR))
    return None


def point_id(review_id: str) -> str:
    """The point's id: a UUID of the review id, the same in every job and run."""
    return str(uuid.uuid5(_NAMESPACE, review_id))


_CLIENTS: dict[tuple[str | None, str | None], QdrantClient] = {}
_LOCK = threading.Lock()


def client(settings: IndexSettings) -> QdrantClient:
    """One client per process and location (embedded mode allows one per folder)."""
    from qdrant_client import QdrantClient

    key = (settings.path, settings.url)
    with _LOCK:
        found = _CLIENTS.get(key)
        if found is None:
            try:
                if settings.url is not None:
                    found = QdrantClient(url=settings.url, api_key=settings.api_key)
                else:
                    found = QdrantClient(path=settings.path)
            except RuntimeError as exc:  # embedded mode: the folder is open in another process
                msg = (
                    f"cannot open the vector index ({settings.where}): {exc} "
                    "Stop the job that holds it, or use a Qdrant server (--qdrant-url)."
                )
                raise VectorIndexError(msg) from exc
            if not _CLIENTS:  # close before the interpreter tears modules down
                atexit.register(close_all)
            _CLIENTS[key] = found
        return found


def close_all() -> None:
    """Closes every client of this process (releases embedded folders)."""
    with _LOCK:
        for c in _CLIENTS.values():
            c.close()
        _CLIENTS.clear()
        _ENSURED.clear()


_ENSURED: set[tuple[str | None, str | None, str]] = set()


def ensure_collection(settings: IndexSettings) -> None:
    """Creates the collection if missing; asks the index once per process and location
    (the local runner calls a DoFn's `setup` per bundle)."""
    from qdrant_client import models

    key = (settings.path, settings.url, settings.collection)
    if key in _ENSURED:
        return
    c = client(settings)
    if c.collection_exists(settings.collection):
        _ENSURED.add(key)
        return
    vectors = {
        name: models.VectorParams(size=dim, distance=models.Distance.COSINE)
        for name, dim in settings.dims.items()
    }
    c.create_collection(settings.collection, vectors_config=vectors)
    _ENSURED.add(key)
    log.info("created the vector index collection %s (%s)", settings.collection, settings.where)


def _payload(record: Mapping[str, Any]) -> dict[str, Any]:
    when = record.get("event_time")
    return {
        "review_id": record["review_id"],
        "business_id": record.get("business_id"),
        "user_id": record.get("user_id"),
        "event_time": when.isoformat() if isinstance(when, datetime) else when,
        "text": (record.get("text") or "")[:TEXT_CHARS],
    }


def has_vectors(record: Mapping[str, Any], settings: IndexSettings) -> bool:
    """Whether the record carries every vector the index holds."""
    return all(record.get(VECTOR_FIELDS[name]) is not None for name in settings.dims)


def points(records: Iterable[Mapping[str, Any]], settings: IndexSettings) -> list[Any]:
    """Qdrant points of the records that carry every vector the index holds."""
    from qdrant_client import models

    return [
        models.PointStruct(
            id=point_id(record["review_id"]),
            vector={
                name: [float(v) for v in record[VECTOR_FIELDS[name]]] for name in settings.dims
            },
            payload=_payload(record),
        )
        for record in records
        if has_vectors(record, settings)
    ]


def upsert(settings: IndexSettings, records: Sequence[Mapping[str, Any]]) -> int:
    """Writes the records' points; returns how many (records without vectors are left out)."""
    batch = points(records, settings)
    if batch:
        client(settings).upsert(settings.collection, points=batch, wait=True)
    return len(batch)


@dataclass(frozen=True, kw_only=True)
class Neighbour:
    review_id: str
    score: float  # cosine similarity
    business_id: str | None
    user_id: str | None
    text: str


def similar(settings: IndexSettings, review_id: str, vector: str, k: int) -> list[Neighbour]:
    """The `k` reviews nearest to `review_id` by the named vector, best first."""
    from qdrant_client import models

    if vector not in settings.dims:
        msg = f"no vector {vector!r} in the index; it holds {sorted(settings.dims)}"
        raise VectorIndexError(msg)
    c = client(settings)
    if not c.collection_exists(settings.collection):
        msg = f"the vector index ({settings.where}) is empty: run a job with the models first"
        raise VectorIndexError(msg)
    pid = point_id(review_id)
    found = c.retrieve(settings.collection, ids=[pid], with_vectors=[vector])
    if not found:
        msg = f"review {review_id!r} is not in the vector index ({settings.where})"
        raise VectorIndexError(msg)
    stored = found[0].vector
    if not isinstance(stored, dict) or vector not in stored:
        msg = f"review {review_id!r} has no {vector!r} vector in the index ({settings.where})"
        raise VectorIndexError(msg)
    query = stored[vector]
    hits = c.query_points(
        settings.collection,
        query=query,
        using=vector,
        limit=k,
        with_payload=True,
        query_filter=models.Filter(must_not=[models.HasIdCondition(has_id=[pid])]),
    ).points
    return [_neighbour(h.payload or {}, h.score) for h in hits]


def _neighbour(payload: Mapping[str, Any], score: float) -> Neighbour:
    return Neighbour(
        review_id=payload["review_id"],
        score=float(score),
        business_id=payload.get("business_id"),
        user_id=payload.get("user_id"),
        text=payload.get("text", ""),
    )


class _Upsert(beam.DoFn):
    def __init__(self, settings: IndexSettings) -> None:
        self.settings = settings
        self.written = Metrics.counter("vector_index", "points_written")

    def setup(self) -> None:
        ensure_collection(self.settings)  # cached client: cheap when called per bundle

    def process(self, batch: Sequence[Mapping[str, Any]]) -> Iterator[int]:
        n = upsert(self.settings, batch)
        self.written.inc(n)
        yield n


class WriteVectorIndex(Transform):
    """Records of `review_content` (review id, keys, text, embeddings) into the index.

    Only records that carry every vector the index holds are written (the others are
    events no model ran on). Batched (`BatchElements`), each batch one upsert; outputs the
    points written per batch. `batched=True` takes lists of records (the backfill's).
    """

    def __init__(
        self, settings: IndexSettings, *, max_batch_size: int = 256, batched: bool = False
    ) -> None:
        super().__init__()
        self.settings = settings
        self.max_batch_size = max_batch_size
        self.batched = batched

    def expand(self, records: PColl) -> PColl:
        if self.batched:
            records = records | "Unbatch" >> beam.FlatMap(lambda batch: batch)
        written: PColl = (
            records
            | "WithVectors" >> beam.Filter(has_vectors, self.settings)
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self.max_batch_size)
            | "Upsert" >> beam.ParDo(_Upsert(self.settings))
        )
        return written
