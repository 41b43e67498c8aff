"""The service's own test suites: run them (subprocess, deadlines, process groups), parse JUnit XML
and Cobertura coverage (untrusted input, size-capped, defusedxml) into claims.

junit and coverage are pure parsers. May import core and stats; never execution, report, probes or contract.
"""
