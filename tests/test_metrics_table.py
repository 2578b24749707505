"""python -m galtools.metrics.table: metrics reports of generators side by side."""

import json
import subprocess
import sys

from galtools.metrics.table import figures, markdown


def report(fid, kid, good, rmse=None, real_rmse=3.5, spearman=None, corrected=False):
    out = {
        "metrics": {
            "fid": {"fid": fid},
            "kid": {"kid": kid, "kid_std": 0.0},
            "power": {"mean_wasserstein": 0.1},
            "morph": {"wasserstein": {"gini": 0.01, "ellipticity": 0.04},
                      "other": {"n": 400, "n_good": good}},
        },
    }  # fmt: skip
    if rmse is not None:
        entry = {"column": "inclination", "generated": {"rmse": rmse, "bias": -1.25},
                 "real": {"rmse": real_rmse, "bias": 0.5}}  # fmt: skip
        if corrected:
            entry["bias_correction"] = {"m": 0.1, "b": 2.0}
        flux = [{"column": "flux", "generated": {"spearman": spearman}, "real": {"spearman": 1}}]
        out["condition_check"] = {"readback": [entry], "flux": flux}
    return out


def test_figures_and_markdown_table(tmp_path):
    rr = report(0.5, 0.001, 400, rmse=3.9, corrected=True)
    gen = report(1.5, 0.004, 390, rmse=7.25, spearman=0.93, corrected=True)
    f = figures(gen)
    assert f["fid"] == 1.5 and f["measurable"] == 97.5 and f["w1_ellipticity"] == 0.04
    assert f["readback_inclination_rmse"] == 7.25 and f["real_readback_inclination_rmse"] == 3.5
    assert f["flux_flux_spearman"] == 0.93 and "w1_m20" not in f
    table = markdown({"real": figures(rr), "gen": figures(gen)}, "real",
                     {"gen": {"training time (s)": 612.4}})  # fmt: skip
    lines = table.splitlines()
    assert lines[0] == "| measure | real | gen |"
    assert "| FID | 0.5 | 1.5 (3.0×) |" in lines
    assert "| KID | 0.001 | 0.004 (4.0×) |" in lines
    assert "| measurable by --morph (%) | 100.0 | 97.5 |" in lines
    assert "| inclination read-back RMSE (bias-corrected) | 3.90 | 7.25 |" in lines
    assert "| inclination read-back bias (bias-corrected) | -1.25 | -1.25 |" in lines
    assert "| flux: rank corr. condition vs measured flux | — | 0.930 |" in lines
    assert "| training time (s) | — | 612 |" in lines
    assert not any("m20" in line for line in lines)  # measured by none: no row

    a, b, extra = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "x.json"
    a.write_text(json.dumps(rr))
    b.write_text(json.dumps(gen))
    extra.write_text(json.dumps({"sampling (images/s)": 40.0}))
    cmd = [sys.executable, "-m", "galtools.metrics.table", "--reference", "real",
           f"real={a}", f"gen={b}+{extra}"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "| FID | 0.5 | 1.5 (3.0×) |" in r.stdout
    assert "| sampling (images/s) | — | 40 |" in r.stdout
    r = subprocess.run(cmd[:-1] + [f"gen={tmp_path / 'none.json'}"], capture_output=True, text=True)
    assert r.returncode == 1 and "none.json: cannot read" in r.stderr


def test_no_ratio_to_a_floor_at_or_below_zero():
    """KID's unbiased estimate of real vs real can be negative: no 'x times' it is shown."""
    table = markdown({"real": figures(report(0.5, -0.0012, 400)),
                      "gen": figures(report(1.5, 0.0092, 400))}, "real")  # fmt: skip
    assert "| KID | -0.0012 | 0.0092 |" in table.splitlines()
    assert "| FID | 0.5 | 1.5 (3.0×) |" in table.splitlines()
