"""Create the BigQuery datasets and tables the registry describes (idempotent)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from google.api_core import exceptions
from google.cloud import bigquery

from feature_store.resources import Change
from feature_store.schemas import TableSpec

log = logging.getLogger(__name__)


def bigquery_schema(spec: TableSpec) -> list[bigquery.SchemaField]:
    return [
        bigquery.SchemaField(c.name, c.type, mode=c.mode, description=c.description)
        for c in spec.columns
    ]


def table_definition(project: str, spec: TableSpec) -> bigquery.Table:
    table = bigquery.Table(f"{project}.{spec.dataset}.{spec.name}", schema=bigquery_schema(spec))
    table.description = spec.description
    if spec.partition_field:
        table.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field=spec.partition_field
        )
    if spec.clustering:
        table.clustering_fields = list(spec.clustering)
    return table


def bigquery_changes(
    client: bigquery.Client, specs: Sequence[TableSpec], *, apply: bool, location: str = "US"
) -> list[Change]:
    changes: list[Change] = []
    for dataset in sorted({s.dataset for s in specs}):
        ref = f"{client.project}.{dataset}"
        try:
            client.get_dataset(ref)
            changes.append(Change("dataset", ref, "exists"))
        except exceptions.NotFound:
            if apply:
                ds = bigquery.Dataset(ref)
                ds.location = location
                client.create_dataset(ds, exists_ok=True)
                log.info("created dataset %s", ref)
            changes.append(Change("dataset", ref, "create"))
    for spec in specs:
        table = table_definition(client.project, spec)
        try:
            client.get_table(table.reference)
            changes.append(Change("table", str(table.reference), "exists"))
        except exceptions.NotFound:
            if apply:
                client.create_table(table, exists_ok=True)
                log.info("created table %s", table.reference)
            changes.append(Change("table", str(table.reference), "create"))
    return changes
