"""Shared library of ClusterCockpit in Python (imports nothing from services/)."""

__version__ = "0.1.0"
