"""galtools-cutouts: the ``galprep cutouts`` command (postage stamps of detected sources)."""

__version__ = "0.1.0"
