"""Idempotent re-runs: a backfill loads into a staging table, then one transaction
replaces the target's rows in the backfilled range with the staging rows.

Re-running the same range therefore replaces, never duplicates, and readers never see a
half-written range (BigQuery runs the script as one multi-statement transaction).
"""

from __future__ import annotations

import logging
from datetime import datetime

from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from feature_store.feast_repo import VALID_FROM

log = logging.getLogger(__name__)


def staging_table(target: str, run_id: str) -> str:
    return f"{target}__staging_{run_id}"


def _ts(moment: datetime) -> str:
    return f"TIMESTAMP '{moment.isoformat()}'"


def replace_range_sql(target: str, staging: str | None, columns: tuple[str, ...],
                      start: datetime | None, end: datetime) -> str:
    """Delete target rows with valid_from in [start, end], copy the staging rows in."""
    lower = f"{VALID_FROM} >= {_ts(start)} AND " if start else ""
    cols = ", ".join(f"`{c}`" for c in columns)
    insert = f"INSERT INTO `{target}` ({cols}) SELECT {cols} FROM `{staging}`;\n" if staging else ""
    return (
        "BEGIN TRANSACTION;\n"
        f"DELETE FROM `{target}` WHERE {lower}{VALID_FROM} <= {_ts(end)};\n"
        f"{insert}"
        "COMMIT TRANSACTION;\n"
    )


def swap_in(client: bigquery.Client, target: str, staging: str, columns: tuple[str, ...],
            start: datetime | None, end: datetime) -> int:
    """Runs the replacement, drops the staging table; returns the rows copied in."""
    try:
        copied = int(client.get_table(staging).num_rows or 0)
    except NotFound:  # nothing was computed for this view: the range becomes empty
        client.query(replace_range_sql(target, None, columns, start, end)).result()
        return 0
    client.query(replace_range_sql(target, staging, columns, start, end)).result()
    client.delete_table(staging, not_found_ok=True)
    log.info("replaced %s rows of %s in (%s, %s]", copied, target, start, end)
    return copied
