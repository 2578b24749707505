"""galtools-cutouts: ``galprep cutouts``, stamps of sources detected with photutils."""

from setuptools import find_packages, setup

setup(
    name="galtools-cutouts",
    version="0.1.0",
    description="galprep cutouts: postage stamps of detected sources in a large image",
    license="BSD-3-Clause",
    python_requires=">=3.9",
    packages=find_packages(include=["galtools_cutouts", "galtools_cutouts.*"]),
    install_requires=[
        "galtools",
        "photutils>=1.13",
        "scikit-image>=0.19",
        "astropy>=5.0",
        "numpy>=1.23",
        "pillow>=9.0",
    ],
    entry_points={"galtools.commands": ["cutouts = galtools_cutouts.command:cutouts"]},
)
