"""--precision auto: bfloat16 only where the hardware computes in it; a warning where the asked
bfloat16 is emulated (18× slower steps were measured on an AVX2-only CPU)."""

import json

import pytest

from galtools.train import precision as prec
from tests.tinyruns import tiny_data

X86_AVX2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma\n"
X86_BF16 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"
X86_AMX = "flags\t\t: avx2 avx512f amx_bf16 amx_tile\n"
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
ARM_OLD = "Features\t: fp asimd evtstrm\nCPU part\t: 0xd08\n"


@pytest.mark.parametrize(
    "text,native",
    [(X86_AVX2, False), (X86_BF16, True), (X86_AMX, True), (ARM_BF16, True), (ARM_OLD, False),
     ("", False), ("model name\t: bf16 in a name is not a flag\n", False)],
)  # fmt: skip
def test_native_bfloat16_is_read_from_the_cpu_flags(text, native):
    assert prec.cpu_has_bfloat16(text) is native


def test_auto_resolves_by_hardware_and_model():
    assert prec.resolve("auto", False) == "float32"
    assert prec.resolve("auto", True) == "mixed_bfloat16"
    assert prec.resolve("auto", True) == "mixed_bfloat16"
    assert prec.resolve("auto", True, allowed=("float32",)) == "float32"
    assert prec.resolve("mixed_bfloat16", False) == "mixed_bfloat16"  # asked: kept
    assert prec.resolve("float32", True) == "float32"


def test_emulated_bfloat16_is_warned_about():
    note = prec.advice("mixed_bfloat16", "cpu", False)
    assert "emulated" in note and "--precision auto" in note and "AVX512_BF16" in note
    assert "compute capability" in prec.advice("mixed_bfloat16", "gpu", False)
    assert prec.advice("mixed_bfloat16", "cpu", True) is None
    assert prec.advice("float32", "cpu", False) is None


def test_train_batch_auto_records_what_it_chose_and_warns_on_emulated_bfloat16(galprep, tmp_path):
    native = prec.cpu_has_bfloat16()  # CI has no GPU: the CPU decides
    args = ["--model", "vgg", "--target", "inclination", "--batch-size", "16", "--passes", "1"]
    r = galprep("train-batch", tiny_data(), *args, "--precision", "auto", "-o", tmp_path / "a")
    assert r.code == 0, r.stderr
    chosen = "mixed_bfloat16" if native else "float32"
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert metrics["precision"] == config["training"]["precision"] == chosen
    assert f"start vgg step 0/4 in {chosen}" in (tmp_path / "a" / "train.log").read_text()
    assert "warning" not in r.stderr
    # more passes of the same run: it goes on in what it started with
    r = galprep("train-batch", tiny_data(), *args[:-1], "2", "--precision", "auto", "-o",
                tmp_path / "a")  # fmt: skip
    assert r.code == 0, r.stderr
    assert f"resume vgg step 4/8 in {chosen}" in (tmp_path / "a" / "train.log").read_text()
    r = galprep(
        "train-batch", tiny_data(), *args, "--precision", "mixed_bfloat16", "-q", "-o",
        tmp_path / "b",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    warned = "warning: --precision mixed_bfloat16: this CPU has no AVX512_BF16" in r.stderr
    assert warned is not native  # printed even with -q, only where bfloat16 is emulated
    # a run started in mixed_bfloat16 goes on in it under auto, whatever auto would pick here
    r = galprep("train-batch", tiny_data(), *args[:-1], "2", "--precision", "auto", "-q", "-o",
                tmp_path / "b")  # fmt: skip
    assert r.code == 0, r.stderr
    assert "resume vgg step 4/8 in mixed_bfloat16" in (tmp_path / "b" / "train.log").read_text()
