"""CIL2018 (Bernhardt et al., the "2-in-1" GAN): its data/ folder and Kaggle CSV formats.

config.py's layout: ``data/labeled/``, ``data/scored/`` and ``data/query/`` hold ``<Id>.png``
(1000×1000 greyscale in the original; small here); ``data/labeled.csv`` is ``Id,Actual`` with
1 = galaxy, 0 = corrupted; ``data/scored.csv`` is ``Id,Actual`` with scores 0–8; the query
images have no labels, and Kaggle's ``sample_submission.csv`` is the answer template.
"""

import numpy as np
from PIL import Image

from galtools.arrayfile import read_galaxies


def cil_data(root, n=4, size=12):
    data = root / "data"
    rng = np.random.default_rng(1)
    for part, first in (("labeled", 1000), ("scored", 2000), ("query", 3000)):
        (data / part).mkdir(parents=True)
        for k in range(n):
            img = rng.integers(0, 256, (size, size), dtype=np.uint8)
            Image.fromarray(img, "L").save(data / part / f"{first + k}.png")
    (data / "labeled.csv").write_text(
        "Id,Actual\n" + "".join(f"{1000 + k},{float(k % 2)}\n" for k in range(n))
    )
    (data / "scored.csv").write_text(
        "Id,Actual\n" + "".join(f"{2000 + k},{0.5 + 2 * k}\n" for k in range(n))
    )
    (data / "sample_submission.csv").write_text(
        "Id,Predicted\n" + "".join(f"{3000 + k},0\n" for k in range(n))
    )
    return data


def test_scored_and_labeled_take_the_csv_named_after_their_folder(galprep, tmp_path):
    data = cil_data(tmp_path)
    for part, column in (("scored", [0.5, 2.5, 4.5, 6.5]), ("labeled", [0, 1, 0, 1])):
        out = tmp_path / f"{part}.h5"
        r = galprep("import", "kaggle-png", data / part, "-o", out)
        assert r.code == 0, r.stderr
        assert f"labels from {data / part}.csv" in r.stderr  # says which CSV it adopted
        batch, meta = read_galaxies(out)
        np.testing.assert_allclose(batch["actual"], column)
        assert meta["labels_csv"].endswith(f"{part}.csv")


def test_query_images_unlabelled(galprep, tmp_path):
    data = cil_data(tmp_path)
    out = tmp_path / "query.h5"
    # beside query/ are labeled.csv and scored.csv: neither is adopted silently
    r = galprep("import", "kaggle-png", data / "query", "-o", out)
    assert r.code != 0 and "several CSV files (labeled.csv, scored.csv)" in r.stderr
    assert "--csv none" in r.stderr
    r = galprep("import", "kaggle-png", data / "query", "-o", out, "--csv", "none")
    assert r.code == 0, r.stderr
    batch, meta = read_galaxies(out)
    assert list(batch["ids"]) == ["3000", "3001", "3002", "3003"]
    assert set(batch) == {"images", "ids"} and meta["labels_csv"] is None


def test_sample_submission_is_never_taken_as_labels(galprep, tmp_path):
    data = cil_data(tmp_path)
    (data / "labeled.csv").unlink()
    (data / "scored.csv").unlink()
    out = tmp_path / "query.h5"
    r = galprep("import", "kaggle-png", data / "query", "-o", out)
    assert r.code == 0, r.stderr
    batch, _ = read_galaxies(out)
    assert "predicted" not in batch and "labels from" not in r.stderr


def test_missing_csv_file_is_one_line(galprep, tmp_path):
    data = cil_data(tmp_path)
    r = galprep("import", "kaggle-png", data / "scored", "-o", tmp_path / "o.h5", "--csv", "x.csv")
    assert r.code != 0 and "x.csv: no such CSV file" in r.stderr and "Traceback" not in r.stderr
