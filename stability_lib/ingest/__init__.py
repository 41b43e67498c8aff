"""Ingest: results of load runs made elsewhere (Locust CSV stats, k6 JSON output and summaries),
turned into latency samples and error counts the performance section judges against a baseline.

Parsing is pure (bytes in, frozen records out); reading files stays in one thin, size-capped
module. May import ``stats`` and ``core`` only.
"""
