"""galtools: command-line tools for machine learning on galaxy images."""

__version__ = "0.1.0"
