"""Statistics behind every verdict: failure-rate bounds, performance comparison (inference), and
sequential tests (sequential).

Pure: numpy/scipy and stability_lib.core only; no I/O, seeded randomness.
"""
