"""No core module knows a built-in model by its name: the tools ask a model's declarations.

The built-in models are read from setup.py's MODELS list; each may name itself (and the other
models) only in its own module.  Names are matched as whole tokens, so ``dcgan`` is not a
``cgan`` and ``vgg16`` is not ``vgg``.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def builtin_models():
    """{name: module file} of setup.py's MODELS entries."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "MODELS" for t in node.targets
        ):
            entries = ast.literal_eval(node.value)
            break
    else:
        raise AssertionError("setup.py has no MODELS list")
    out = {}
    for entry in entries:
        name, value = (part.strip() for part in entry.split("="))
        module = value.split(":")[0]
        out[name] = ROOT / (module.replace(".", "/") + ".py")
    return out


def token_pattern(names):
    words = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])({words})(?![\w-])")


def test_token_pattern_matches_whole_names_only():
    pattern = token_pattern(["cgan", "vgg", "resnet-denoiser"])
    assert pattern.findall("a cgan run; --model vgg; resnet-denoiser.") == [
        "cgan",
        "vgg",
        "resnet-denoiser",
    ]
    assert pattern.findall("dcgan vgg16 my_vgg vgg-like resnet-denoiser2 cgans") == []


def test_no_core_module_names_a_builtin_model():
    models = builtin_models()
    assert {"vgg", "twoinone", "cgan"} <= set(models)
    own = {path.resolve() for path in models.values()}
    assert all(path.is_file() for path in own)
    pattern = token_pattern(models)
    hits = []
    for path in sorted((ROOT / "galtools").rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.resolve() in own:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for match in pattern.finditer(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {match.group(1)}")
    assert hits == [], "core modules name built-in models:\n" + "\n".join(hits)
