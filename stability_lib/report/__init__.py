"""From evidence to what the reader sees: summary and overall verdict, evidence warnings, the
report notebook's API (RunReport), the front page, section views, HTML fragments, the fallback page,
HTML/PDF export, claims as JUnit XML for CI, and the data API (stored runs as pandas frames).

May import execution (to read evidence and params), core and stats, and suites.junit (the data API
reads JUnit files); never probes or contract.
"""
