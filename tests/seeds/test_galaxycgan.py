"""galaxyCGAN (Gentry): data/ as its README describes, imported as the notebooks use it.

``images.small.npy`` is ``[n_ids, 3, 50, 50]`` in the order of ``HSC_ids.npy``;
``2018_02_23-all_objects.csv`` has ``HSC_id`` as a non-unique key (COSMOS_id is the primary
key), and a boolean ``selected``.  ``simple gan.ipynb`` keeps ``df[df.selected]``, then the first
row per ``HSC_id`` (``drop_duplicates``), and conditions on ``photo_z`` and ``log_mass``.
galtools' join also keeps the first row per id; ``--catalog-where selected`` filters first,
as the notebook does (without it, the first raw row wins: a deliberate, reported default).
"""

import numpy as np

from galtools.arrayfile import read_galaxies


def cgan_data(root, n=12, seed=3):
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(seed)
    hsc = np.arange(43158176442374000, 43158176442374000 + n, dtype=np.int64)
    np.save(data / "HSC_ids.npy", hsc)
    np.save(data / "images.small.npy", rng.normal(size=(n, 3, 50, 50)).astype(np.float32))
    rows = ["COSMOS_id,HSC_id,selected,photo_z,log_mass"]
    cosmos = 1000
    for k, key in enumerate(hsc):
        # two or three COSMOS matches per HSC object; only some are 'selected'
        for j in range(2 + k % 2):
            selected = (j == 1) if k % 3 else (j == 0)
            z, m = 0.1 + 0.01 * k + 0.5 * j, 8.5 + 0.1 * k + j
            rows.append(f"{cosmos},{key},{selected},{z:.3f},{m:.2f}")
            cosmos += 1
    (data / "2018_02_23-all_objects.csv").write_text("\n".join(rows) + "\n")
    return data


def notebook_labels(csv_path, hsc_ids, selected_only=True):
    """The notebook's df[df.selected].drop_duplicates("HSC_id").loc[HSC_ids], in numpy."""
    lines = csv_path.read_text().splitlines()[1:]
    first = {}
    for line in lines:
        _, key, selected, z, m = line.split(",")
        if selected_only and selected != "True":
            continue
        first.setdefault(int(key), (float(z), float(m)))
    return np.array([first[int(k)] for k in hsc_ids])


def test_selected_rows_before_first_per_id(galprep, tmp_path):
    data = cgan_data(tmp_path)
    csv = data / "2018_02_23-all_objects.csv"
    out = tmp_path / "cgan.h5"
    args = ["import", "npy", data / "images.small.npy", "--channels-first"]
    args += ["--ids", data / "HSC_ids.npy", "--catalog", csv, "--catalog-id", "HSC_id"]
    r = galprep(*args, "--catalog-where", "selected", "-o", out)
    assert r.code == 0, r.stderr
    assert "where selected" in r.stderr
    batch, meta = read_galaxies(out)
    hsc = np.load(data / "HSC_ids.npy")
    assert batch["images"].shape == (12, 50, 50, 3)
    np.testing.assert_array_equal(
        batch["images"], np.moveaxis(np.load(data / "images.small.npy"), 1, -1)
    )
    assert [int(i) for i in batch["ids"]] == hsc.tolist()
    want = notebook_labels(csv, hsc)
    np.testing.assert_allclose(np.c_[batch["photo_z"], batch["log_mass"]], want)

    # without the filter: the first raw row per id (differs where that row is not selected)
    raw = tmp_path / "raw.h5"
    assert galprep(*args, "-o", raw).code == 0
    batch_raw, _ = read_galaxies(raw)
    first_raw = notebook_labels(csv, hsc, selected_only=False)
    np.testing.assert_allclose(batch_raw["photo_z"], first_raw[:, 0])
    assert (batch_raw["photo_z"] != batch["photo_z"]).sum() == 8


def test_catalog_where_unknown_column_is_one_line(galprep, tmp_path):
    data = cgan_data(tmp_path)
    r = galprep(
        "import", "npy", data / "images.small.npy", "--channels-first",
        "--ids", data / "HSC_ids.npy", "--catalog", data / "2018_02_23-all_objects.csv",
        "--catalog-id", "HSC_id", "--catalog-where", "chosen", "-o", tmp_path / "x.h5",
    )  # fmt: skip
    assert r.code != 0 and "no column 'chosen'" in r.stderr and "Traceback" not in r.stderr


def test_catalog_where_needs_a_catalog(galprep, tmp_path):
    data = cgan_data(tmp_path)
    r = galprep(
        "import", "npy", data / "images.small.npy", "--channels-first",
        "--catalog-where", "selected", "-o", tmp_path / "x.h5",
    )  # fmt: skip
    assert r.code == 2 and "--catalog-where needs --catalog" in r.stderr
    assert not (tmp_path / "x.h5").exists()
