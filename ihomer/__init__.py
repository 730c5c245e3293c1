"""ihomer: online multi-label classification on data streams."""

__version__ = "0.1.0"
