"""Beam transforms and clients both jobs use: validation, keys, archive, BigQuery, metrics."""
