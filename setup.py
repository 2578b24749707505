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
    "metrics = galtools.commands.metrics:metrics",
    "import = galtools.commands.import_:import_",
    "train-batch = galtools.commands.train_batch:train_batch",
    "resize = galtools.commands.resize:resize",
    "compress = galtools.commands.compress:compress",
    "split = galtools.commands.split:split",
    "augment = galtools.commands.augment:augment",
    "degrade = galtools.commands.degrade:degrade",
    "score = galtools.commands.score:score",
    "denoise = galtools.commands.denoise:denoise",
    "generate = galtools.commands.generate:generate",
]
MODELS = [
    "vgg = galtools.models.vgg:vgg",
    "cnn-classifier = galtools.models.classifier:cnn_classifier",
    "dcgan = galtools.models.gan:dcgan",
    "twoinone = galtools.models.gan:twoinone",
    "cgan = galtools.models.gan:cgan",
    "ddpm = galtools.models.diffusion:ddpm",
    "resnet-denoiser = galtools.models.denoiser:resnet_denoiser",
    "ridge-histogram = galtools.models.ridge:ridge_histogram",
    "forest-histogram = galtools.models.forest:forest_histogram",
]
IMPORTERS = [
    "galaxy10 = galtools.importers.galaxy10:importer",
    "kaggle-png = galtools.importers.kaggle_png:importer",
    "npy = galtools.importers.npy:importer",
    "fits-folder = galtools.importers.fits_folder:importer",
]
METRICS = [
    "fid = galtools.metrics.fid:FID",
    "kid = galtools.metrics.fid:KID",
    "power = galtools.metrics.power:Power",
    "morph = galtools.metrics.morphology:Morphology",
]
FEATURES = ["run = galtools.features.run:run_extractor"]

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
        "test": [
            "pytest>=7",
            "ruff>=0.4",
            "statmorph>=0.5",
            "scikit-image>=0.19",
            "scikit-learn>=1.1",
            # Keras' JAX backend: runs are used without TensorFlow (tests/test_backends.py)
            "jax[cpu]>=0.4",
        ],
        # forest-histogram fits with scikit-learn (CIL2018's random forest); runs need none
        "baselines": ["scikit-learn>=1.1"],
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
