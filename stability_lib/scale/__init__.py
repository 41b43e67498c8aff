"""Scale: the params scenario driven by Locust (master and workers) instead of our own engine.

Owns the Locust User class, the master/worker processes a run starts and stops, and turning the
sessions Locust's users report into the same records and evidence as ``probes``. Locust itself
(gevent, monkey-patching) is only ever imported in the Locust processes, never here at import time.
May import ``probes``, ``stats`` and ``core``; nothing imports it but the sections and the commands.
"""
