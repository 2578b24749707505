"""Features of every image of a file: protocol, extractor, chunks, and a content-keyed cache."""

import hashlib
import json
import os

import numpy as np

from galtools.atomic import atomic_open
from galtools.errors import GalError
from galtools.features import protocol as protomod


def file_digest(path):
    """sha256 of a file's bytes (the cache's notion of 'the same input')."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**22), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(path, extractor, proto):
    text = json.dumps(
        {
            "input": file_digest(path),
            "extractor": extractor.describe(),
            "protocol": proto.to_dict(),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _cached(cache, key):
    path = os.path.join(cache, key + ".npy")
    if os.path.isfile(path):
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None
    return None


def _store(cache, key, features, info):
    os.makedirs(cache, exist_ok=True)
    with atomic_open(os.path.join(cache, key + ".npy"), "wb", overwrite=True) as fh:
        np.save(fh, features, allow_pickle=False)
    with atomic_open(os.path.join(cache, key + ".json"), "w", overwrite=True) as fh:
        json.dump(info, fh, indent=1, default=str)


def file_features(path, extractor, proto, cache=None, chunk_size=None, desc=None):
    """(N×D features, info) of the images of ``path``; non-finite images are skipped."""
    from galtools.arrayfile import open_galaxies
    from galtools.progress import progress

    key = None
    if cache:
        key = cache_key(path, extractor, proto)
        hit = _cached(cache, key)
        if hit is not None:
            info_path = os.path.join(cache, key + ".json")
            skipped = 0
            if os.path.isfile(info_path):
                with open(info_path) as fh:
                    skipped = json.load(fh).get("skipped_nonfinite", 0)
            return hit, {"cached": True, "skipped_nonfinite": skipped}
    parts, skipped = [], 0
    with open_galaxies(path) as reader:
        bands = reader.bands
        step = chunk_size or max(1, min(256, reader.n))
        bar = progress(total=reader.n, desc=desc or "features")
        for _, batch in reader.chunks(step, fields=["images"]):
            images = batch["images"]
            finite = np.isfinite(images.reshape(len(images), -1)).all(axis=1)
            skipped += int((~finite).sum())
            images = images[finite]
            if len(images):
                x = protomod.apply(proto, images, bands)
                feats = np.asarray(extractor.features(x), dtype=np.float32)
                parts.append(feats.reshape(len(x), -1))
            bar.update(len(batch["images"]))
        bar.close()
    if not parts:
        raise GalError(f"{path}: no finite images to extract features from")
    features = np.concatenate(parts)
    if cache:
        _store(
            cache,
            key,
            features,
            {
                "input": os.path.abspath(path),
                "extractor": extractor.describe(),
                "protocol": proto.to_dict(),
                "skipped_nonfinite": skipped,
            },
        )
    return features, {"cached": False, "skipped_nonfinite": skipped}
