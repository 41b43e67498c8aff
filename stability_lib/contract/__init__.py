"""Contract checks: OpenAPI diff and its rules (table, schema rules, Swagger 2.0 conversion), the
diff's output formats, WebSocket message contract, database schema diff, and the contract section that
turns their changes into claims.

openapi_diff, openapi_rules_*, swagger2, diff_output and ws_messages are pure (spec dicts in, changes
out); section and db_schema fetch specs
and read databases. May import core and stats; never execution, report, probes or suites.
"""
