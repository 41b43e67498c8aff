"""Probes of the live service: scenario parsing, templates and conditions, WebSocket conversations
(spec and sans-I/O matcher), the HTTP/WebSocket session engine, session records and outcomes, golden
path, isolation/soak, health checks, performance sampling.

scenario, templates, conditions, conversation_spec, conversation, sessions and operations are pure; engine, golden, health and perf do network I/O with caps
on count, concurrency and time. May import core and stats; never report, suites or contract.
"""
