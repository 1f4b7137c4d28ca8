"""The version of xpnn (one place, read by the package and by the file format)."""

__version__ = "0.1.0"
