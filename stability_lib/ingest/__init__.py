"""Ingest: results of load runs made elsewhere (Locust CSV stats, k6 JSON output, summaries and
log), turned into latency samples or percentiles and error counts that the performance section
judges against a baseline run's files.

Parsing is pure (bytes in, frozen records out): ``records`` (the values), ``locust_csv``, ``k6``,
``percentiles`` (the distribution-free rule for files without samples), ``judge`` (the claims),
``config`` (``sections.performance.external``), ``view_rows`` (the report's table). Reading files
stays in one thin, size-capped module, ``files``, whose ``external_performance_claims(config,
base_dir)`` is what the section calls. May import ``stats`` and ``core`` only.
"""
