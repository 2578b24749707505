"""galtools-galsim: the ``galprep simulate`` command (labelled synthetic galaxies via GalSim)."""

__version__ = "0.1.0"
