"""The one atomic writer: names, modes, failures mid-write, stale temporaries, full disks,
kill -9 of a real galprep, and pool workers that end quietly with their parent."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from galtools import atomic
from galtools.arrayfile import GalaxyWriter, read_galaxies, write_galaxies
from galtools.errors import GalError
from galtools.meta import new_meta
from tests.conftest import make_batch


@pytest.fixture
def umask027():
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def hidden(directory):
    return sorted(f for f in os.listdir(directory) if f.startswith("."))


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def stale_name(output, pid, host=None, suffix=".h5"):
    return f".{output}.tmp-{host or atomic._host()}-{pid}-abcd1234{suffix}"


# ------------------------------------------------------------------------------- the writer


def test_temporary_is_named_for_host_and_pid_and_renamed(tmp_path):
    out = tmp_path / "out.json"
    with atomic.atomic_path(out) as tmp:
        name = os.path.basename(tmp)
        assert os.path.dirname(tmp) == str(tmp_path)
        assert name.startswith(f".out.json.tmp-{atomic._host()}-{os.getpid()}-")
        assert name.endswith(".json")
        assert atomic._parse("out.json", name) == (atomic._host(), os.getpid())
        assert not out.exists()
        with open(tmp, "w") as fh:
            fh.write("{}")
    assert out.read_text() == "{}"
    assert hidden(tmp_path) == []


def test_modes_follow_the_umask(tmp_path, umask027):
    from matplotlib.figure import Figure

    atomic.write_json(tmp_path / "a.json", {"b": 1, "a": np.float32(0.5)})
    assert json.loads((tmp_path / "a.json").read_text()) == {"a": 0.5, "b": 1}
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    atomic.save_figure(fig, tmp_path / "p.png", dpi=40)
    write_galaxies(tmp_path / "g.h5", make_batch(n=3), new_meta(bands="gri"))
    write_galaxies(tmp_path / "g.npz", make_batch(n=3), new_meta(bands="gri"))
    with atomic.atomic_dir(tmp_path / "folder") as d:
        with open(os.path.join(d, "x.txt"), "w") as fh:
            fh.write("x")
    for name in ("a.json", "p.png", "g.h5", "g.npz"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o640, name
    assert os.stat(tmp_path / "folder").st_mode & 0o777 == 0o750
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # replacing keeps working, and a replaced folder leaves nothing behind
    atomic.write_json(tmp_path / "a.json", [1])
    with atomic.atomic_dir(tmp_path / "folder", overwrite=True) as d:
        pass
    assert os.listdir(tmp_path / "folder") == []
    assert hidden(tmp_path) == []


def test_existing_output_and_input_are_refused(tmp_path):
    (tmp_path / "x.json").write_text("old")
    with pytest.raises(GalError, match="output exists"):
        with atomic.atomic_open(tmp_path / "x.json") as fh:
            fh.write("new")
    with pytest.raises(GalError, match="also an input"):
        with atomic.atomic_path(tmp_path / "x.json", overwrite=True, inputs=[tmp_path / "x.json"]):
            pass
    assert (tmp_path / "x.json").read_text() == "old"
    assert hidden(tmp_path) == []


def test_stdout_path(capfdbinary):
    with atomic.atomic_open("-", "wb") as fh:
        fh.write(b"streamed")
    assert capfdbinary.readouterr().out == b"streamed"


def test_run_directory_files_follow_the_umask(tmp_path, umask027):
    from tests.conftest import run_galprep
    from tests.tinyruns import tiny_data

    data = tiny_data()
    for model in ("vgg", "ridge-histogram"):
        run = tmp_path / model
        r = run_galprep(
            "train-batch", data, "-o", run, "--model", model, "--target", "inclination",
            "--batch-size", "16", "-q",
        )  # fmt: skip
        assert r.code == 0, r.stderr
        files = 0
        for root, _dirs, names in os.walk(run):
            assert os.stat(root).st_mode & 0o777 == 0o750, root
            for name in names:
                assert not name.startswith("."), os.path.join(root, name)
                mode = os.stat(os.path.join(root, name)).st_mode & 0o777
                assert mode == 0o640, (os.path.join(root, name), oct(mode))
                files += 1
        assert (run / "config.json").exists() and (run / "metrics.json").exists()
        assert files >= 4


# --------------------------------------------------------------------- failures mid-write


@pytest.mark.parametrize("out", ["out.h5", "out.npz"])
def test_array_file_failure_mid_write_leaves_nothing(tmp_path, monkeypatch, galprep, out):
    src = tmp_path / "in.h5"
    write_galaxies(src, make_batch(n=40), new_meta(bands="gri"))
    calls = []
    real = GalaxyWriter.append

    def append(self, batch=None, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected after the first chunk")
        return real(self, batch, **kw)

    monkeypatch.setattr(GalaxyWriter, "append", append)
    r = galprep("degrade", src, "--noise", "0.1", "--chunk-size", "10", "-o", tmp_path / out)
    assert r.code != 0 and "injected after the first chunk" in r.stderr
    assert len(calls) == 2
    assert sorted(os.listdir(tmp_path)) == ["in.h5"]


@pytest.mark.parametrize("exc", [ValueError, KeyboardInterrupt])
def test_json_and_png_failure_mid_write_leave_nothing(tmp_path, exc):
    class Boom:
        def __float__(self):
            raise exc("injected")

    with pytest.raises(exc):
        atomic.write_json(tmp_path / "r.json", {"a": [1, 2, 3], "z": Boom()})

    class Figure:
        def savefig(self, path, **kw):
            with open(path, "wb") as fh:
                fh.write(b"\x89PNG half a picture")
            raise exc("injected")

    with pytest.raises(exc):
        atomic.save_figure(Figure(), tmp_path / "p.png")
    with pytest.raises(exc):
        with atomic.atomic_dir(tmp_path / "plots") as d:
            open(os.path.join(d, "one.png"), "wb").close()
            raise exc("injected")
    assert os.listdir(tmp_path) == []


def test_metrics_report_failure_leaves_no_plot_folder(tmp_path, small_file, monkeypatch, galprep):
    a, b = small_file("a.h5", n=20, shape=(16, 16, 1)), small_file("b.h5", n=20, seed=1,
                                                                   shape=(16, 16, 1))  # fmt: skip
    import galtools.metrics.plots as plots

    def boom(*args, **kw):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(plots, "power_plots", boom)
    r = galprep(
        "metrics", a, b, "--power", "--plots", tmp_path / "plots", "-o", tmp_path / "m.json"
    )
    assert r.code != 0 and "plot failed" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["a.h5", "b.h5"]


# ------------------------------------------------------------------------------ full disk


def _enospc(*args, **kw):
    raise OSError(errno.ENOSPC, "No space left on device")


def _h5_enospc(*args, **kw):
    raise OSError(
        "Can't synchronously write data (file write failed: time = Mon Nov 23 05:12:03 2026, "
        "filename = 'x', file descriptor = 5, errno = 28, error message = 'No space left on "
        "device', buf = 0x1, total write size = 4096, bytes this sub-write = 4096)"
    )


@pytest.mark.parametrize("raiser", [_enospc, _h5_enospc])
def test_full_disk_is_one_line_naming_output_and_free_space(tmp_path, monkeypatch, galprep, raiser):
    src = tmp_path / "in.h5"
    write_galaxies(src, make_batch(n=30), new_meta(bands="gri"))
    monkeypatch.setattr(GalaxyWriter, "_append_h5", raiser)
    out = tmp_path / "out.h5"
    r = galprep("degrade", src, "--noise", "0.1", "-o", out)
    assert r.code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"galprep degrade: error: {out}: no space left on device")
    assert " free on " in lines[0] and str(tmp_path) in lines[0]
    assert sorted(os.listdir(tmp_path)) == ["in.h5"]


def test_full_disk_json_and_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(json, "dump", _enospc)
    with pytest.raises(GalError, match=r"r\.json: no space left on device .* free on ") as info:
        atomic.write_json(tmp_path / "r.json", {"a": 1})
    assert isinstance(info.value.__cause__, OSError)
    monkeypatch.undo()
    monkeypatch.setattr(atomic, "_sync_file", _enospc)  # the flush at commit fails
    with pytest.raises(GalError, match="no space left on device"):
        atomic.write_text(tmp_path / "t.txt", "hello")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------- stale temporaries


def test_stale_temporaries_of_dead_processes_are_removed_others_kept(tmp_path, capsys):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = dead_pid()
        names = {
            "dead": stale_name("out.h5", dead),
            "dead_dir": stale_name("out.h5", dead, suffix=""),
            "live": stale_name("out.h5", sleeper.pid),
            "other_host": stale_name("out.h5", dead, host="elsewhere-node-7"),
            "other_output": stale_name("other.h5", dead),
        }
        for key, name in names.items():
            if key == "dead_dir":
                os.mkdir(tmp_path / name)
                (tmp_path / name / "x").write_text("x")
            else:
                (tmp_path / name).write_bytes(b"partial")
        write_galaxies(tmp_path / "out.h5", make_batch(n=2), new_meta(bands="gri"))
        err = capsys.readouterr().err
        left = set(hidden(tmp_path))
        assert left == {names["live"], names["other_host"], names["other_output"]}
        removed = [line for line in err.splitlines() if "stale temporary" in line]
        assert len(removed) == 2, err
        for line in removed:
            assert f"left by process {dead}" in line and "out.h5" in line
        assert read_galaxies(tmp_path / "out.h5")[0]["images"].shape[0] == 2
    finally:
        sleeper.kill()
        sleeper.wait()


def test_long_names_get_a_parseable_temporary(tmp_path):
    name = "x" * 240 + ".json"
    with atomic.atomic_path(tmp_path / name) as tmp:
        assert len(os.path.basename(tmp)) < 255
        assert atomic._parse(name, os.path.basename(tmp)) == (atomic._host(), os.getpid())
        open(tmp, "w").close()
    assert os.listdir(tmp_path) == [name]


# ------------------------------------------------------------------------- kill -9, workers


def _wait_for(predicate, timeout=120, step=0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(step)
    return None


def test_kill_9_mid_write_then_same_command(tmp_path):
    from galtools import registry

    if "simulate" not in registry.entries("galtools.commands"):
        pytest.skip("galprep simulate (galtools-galsim) is not installed")
    out = tmp_path / "sims.h5"
    cmd = [sys.executable, "-m", "galtools.cli", "simulate", "-n", "6000", "--size", "32"]
    cmd += ["--jobs", "2", "--seed", "3", "-o", str(out)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env=env, text=True)

    def partial():
        for f in hidden(tmp_path):
            if f.startswith(".sims.h5.tmp-") and os.path.getsize(tmp_path / f) > 2**20:
                return f
        return None

    tmp = _wait_for(partial)
    assert tmp is not None and proc.poll() is None, "no temporary appeared"
    proc.send_signal(signal.SIGKILL)
    # stderr reaches EOF only when every process holding it (pool workers, forkserver) is gone
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert "Traceback" not in err and "BrokenPipe" not in err and "leaked" not in err, err
    assert not out.exists() and hidden(tmp_path) == [tmp]
    assert f"-{proc.pid}-" in tmp

    rerun = subprocess.run(cmd, stderr=subprocess.PIPE, env=env, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "removed a stale temporary of sims.h5" in rerun.stderr
    assert f"left by process {proc.pid}" in rerun.stderr
    assert os.listdir(tmp_path) == ["sims.h5"]
    assert read_galaxies(out, fields=["ids"])[0]["ids"].shape == (6000,)


WORKERS = """
import os, sys, time
import numpy as np
from galtools.parallel import ordered_map

def work(k):
    time.sleep(0.3)
    return {"images": np.zeros((256, 64, 64), np.float32), "k": k}

for res in ordered_map(work, [(k,) for k in range(200)], jobs=2, shared_bytes=0):
    print(res["k"], flush=True)
"""


def test_pool_workers_end_quietly_when_parent_is_killed(tmp_path):
    script = tmp_path / "w.py"
    script.write_text(textwrap.dedent(WORKERS))
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "0"
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)  # returns once the workers holding stderr are gone
    assert proc.returncode == -signal.SIGKILL
    assert err == "", err
