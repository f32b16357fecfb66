"""Benchmarks: each returns a JSON-ready dict (config, versions, medians over seeds, per-seed values)."""
