"""A run and its files: params (loading, ${ENV} resolution, overrides), the Section handle a notebook
opens, the notebooks runner (papermill), evidence JSON, secret redaction, stored baselines.

May import core, stats, probes, suites and contract (params aggregates their configs); never report,
and never stability_lib.demo (the sample service is found through an entry point).
"""
