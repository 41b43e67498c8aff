"""The tool's version, recorded in every run.json (importable without importing the whole package)."""

__version__ = "0.1.0"
