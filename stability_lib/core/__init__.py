"""Core: the value types every layer shares (Claim, SectionResult, Status, EvidenceRef), the error
classes, and the verdict rules (section and overall status, exit codes).

Pure: imports only the standard library (no I/O modules) and nothing else from stability_lib.
"""
