"""The version, in a module of its own: the hub client sends it without importing the package root."""

__version__ = "0.1.0"
