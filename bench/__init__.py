"""Benchmarks of the feature store against the tools a user would reach for instead."""
