"""galtools-galsim: ``galprep simulate``, labelled synthetic galaxies rendered with GalSim."""

from setuptools import find_packages, setup

setup(
    name="galtools-galsim",
    version="0.1.0",
    description="galprep simulate: labelled synthetic galaxy stamps (GalSim profiles)",
    license="BSD-3-Clause",
    python_requires=">=3.9",
    packages=find_packages(include=["galtools_galsim", "galtools_galsim.*"]),
    install_requires=["galtools", "galsim>=2.4", "numpy>=1.23", "scipy>=1.9"],
    entry_points={"galtools.commands": ["simulate = galtools_galsim.command:simulate"]},
)
