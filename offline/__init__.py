"""The batch side: archive readers, BigQuery writers, point-in-time retrieval, backfill."""
