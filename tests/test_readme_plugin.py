"""The minimal plugin in plugins/README.md, built and installed for real, works as documented."""

import os
import re
import subprocess
import sys

from galtools.arrayfile import write_galaxies
from tests.conftest import make_batch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _blocks(text):
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_readme_minimal_plugin(tmp_path):
    with open(os.path.join(ROOT, "plugins", "README.md"), encoding="utf-8") as fh:
        blocks = _blocks(fh.read())
    setup_py = next(b for b in blocks if b.startswith("# setup.py"))
    module = next(b for b in blocks if b.startswith("# galtools_hello/__init__.py"))
    src = tmp_path / "galtools-hello"
    (src / "galtools_hello").mkdir(parents=True)
    (src / "setup.py").write_text(setup_py)
    (src / "galtools_hello" / "__init__.py").write_text(module)
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    data = tmp_path / "data.h5"
    write_galaxies(data, make_batch(n=7))
    env = dict(os.environ, PYTHONPATH=str(target))
    run = [sys.executable, "-c", "from galtools.cli import main; main()"]
    r = subprocess.run(run + ["hello", str(data)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "7"
    r = subprocess.run(run + ["--help"], capture_output=True, text=True, env=env)
    assert "Count the galaxies in a file." in r.stdout
