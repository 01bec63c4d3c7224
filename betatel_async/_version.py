"""The package's version: read by the build (hatch) and by the User-Agent, without importlib.metadata."""

__version__ = "0.1.0"
