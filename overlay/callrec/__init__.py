"""callrec: call recordings from Feather AI and Siro, one call away."""

__version__ = "0.1.0"

__all__ = ["__version__"]
