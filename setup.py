"""galtools: plugin-based command-line toolkit for machine learning on galaxy images."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "galtools/__init__.py").read_text())[1]

# Built-in entries are registered exactly like a third-party plugin's.
COMMANDS = [
    "info = galtools.commands.info:info",
    "show = galtools.commands.show:show",
    "merge = galtools.commands.merge:merge",
    "plugins = galtools.commands.plugins:plugins",
    "degrade = galtools.commands.degrade:degrade",
]
MODELS = []
IMPORTERS = []
METRICS = []
FEATURES = []

setup(
    name="galtools",
    version=VERSION,
    description="Command-line tools for machine learning on galaxy images",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.9",
    packages=find_packages(include=["galtools", "galtools.*"]),
    install_requires=[
        "click>=8.1",
        "numpy>=1.23",
        "tensorflow>=2.16",
        "keras>=3.0",
        "pillow>=9.0",
        "h5py>=3.6",
        "astropy>=5.0",
        "scipy>=1.9",
        "tqdm>=4.60",
        # every tool that reports curves, confusion matrices or spectra writes a PNG plot
        "matplotlib>=3.5",
    ],
    extras_require={
        "test": ["pytest>=7", "ruff>=0.4", "statmorph>=0.5", "scikit-image>=0.19"],
    },
    entry_points={
        "console_scripts": ["galprep = galtools.cli:main"],
        "galtools.commands": COMMANDS,
        "galtools.models": MODELS,
        "galtools.importers": IMPORTERS,
        "galtools.metrics": METRICS,
        "galtools.features": FEATURES,
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Astronomy",
        "Environment :: Console",
    ],
)
