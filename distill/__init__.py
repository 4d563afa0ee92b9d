"""distill: turn agent logs into provenance-carrying datasets and ground a local model with them."""

__version__ = "0.1.0"
__all__ = ["__version__"]
