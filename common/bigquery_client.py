"""BigQuery clients for the two profiles: real BigQuery, or the local BigQuery emulator.

`make_client(project)` is the ordinary client (application-default credentials, the
BigQuery Storage API for large reads). `make_client(project, endpoint)` is an
`EmulatorClient`, which differs from it in three ways, each for a reason found in the
emulator or the client library:

- Anonymous credentials and `client_options={"api_endpoint": endpoint}`: the emulator
  checks no tokens, and a developer machine has no application-default credentials.
- Uploads (`load_table_from_file`, `load_table_from_dataframe`) always take the resumable
  path. Files under 5 MiB normally go as a multipart upload whose media part the client
  library labels `*/*` (`google.cloud.bigquery.client._GENERIC_CONTENT_TYPE`); the
  emulator accepts only concrete load-format media types there and answers 400
  "multipart upload's second part has unsupported Content-Type '*/*'". Its resumable
  endpoint does not look at the media type, and real BigQuery takes either path, so the
  same bytes arrive by a route both accept.
- No BigQuery Storage API client is ever created, so results are read over REST. The
  Storage API is a gRPC service at `bigquerystorage.googleapis.com`; `api_endpoint`
  does not move it, and callers such as Feast ask for it unconditionally
  (`to_dataframe(create_bqstorage_client=True)`).

Nothing here changes the library for other clients: production code gets the plain
`bigquery.Client`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlsplit

from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from typing_extensions import override

from feature_store.errors import ConfigError

logger = logging.getLogger(__name__)

_clients: dict[tuple[str, str | None, str | None], bigquery.Client] = {}
_clients_lock = threading.Lock()


class EmulatorClient(bigquery.Client):
    """A `bigquery.Client` for the local emulator; see the module docstring for why."""

    @override
    def _do_multipart_upload(
        self,
        stream: Any,
        metadata: Any,
        size: int,
        num_retries: int,
        timeout: Any,
        project: str | None = None,
    ) -> Any:
        del size  # the resumable upload reads the stream to its end
        return self._do_resumable_upload(stream, metadata, num_retries, timeout, project=project)

    @override
    def _ensure_bqstorage_client(self, *args: Any, **kwargs: Any) -> None:
        """None: every reader then falls back to REST."""
        del args, kwargs


def validate_endpoint(endpoint: str) -> str:
    """The endpoint without a trailing slash; it must be `http(s)://host:port`."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
        msg = f"BigQuery emulator endpoint must look like http://host:port, got {endpoint!r}"
        raise ConfigError(msg)
    if parts.path.strip("/") or parts.query or parts.fragment:
        msg = f"BigQuery emulator endpoint must have no path or query, got {endpoint!r}"
        raise ConfigError(msg)
    return endpoint.rstrip("/")


def make_client(
    project: str, endpoint: str | None = None, *, location: str | None = None
) -> bigquery.Client:
    """A client for real BigQuery (`endpoint=None`) or for the emulator at `endpoint`."""
    if not project:
        msg = f"a BigQuery client needs a project id, got {project!r}"
        raise ConfigError(msg)
    if endpoint is None:
        return bigquery.Client(project=project, location=location)
    return EmulatorClient(
        project=project,
        location=location,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": validate_endpoint(endpoint)},
    )


def cached_client(
    project: str, endpoint: str | None = None, *, location: str | None = None
) -> bigquery.Client:
    """One client per (project, endpoint, location) and process, shared by Beam DoFns.

    The DirectRunner calls `DoFn.setup` for every bundle; building a client (and its HTTP
    session) each time would dominate small bundles. `bigquery.Client` is thread-safe.
    """
    key = (project, endpoint, location)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = make_client(project, endpoint, location=location)
            _clients[key] = client
            logger.debug("created BigQuery client for %s at %s", project, endpoint or "GCP")
        return client
