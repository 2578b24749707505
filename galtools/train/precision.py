"""Training precision: Keras dtype policies, and ``auto``, which picks the one the hardware runs
fastest.

bfloat16 halves memory traffic, but only hardware with bfloat16 arithmetic gains from it: GPUs
of compute capability 8.0 and newer, TPUs, x86 CPUs with AVX512_BF16 or AMX, and Arm CPUs with
the BF16 extension.  Elsewhere (an AVX2-only CPU, an older GPU) bfloat16 is emulated, and a
diffusion model's steps were measured 18× slower than in float32 on a 2-core AVX2 EPYC.
"""

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
CHOICES = ("auto",) + PRECISIONS
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 flags, Arm 'Features'


def cpu_has_bfloat16(cpuinfo=None):
    """True when the CPU computes in bfloat16 natively (``cpuinfo``: the text of
    /proc/cpuinfo; read here when None; False where it cannot be read)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as fh:
                cpuinfo = fh.read()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features") and set(value.split()) & set(
            BF16_CPU_FLAGS
        ):
            return True
    return False


def device_platform():
    """(platform, bfloat16 native) of the first device Keras' backend computes on:
    platform is 'cpu', 'gpu' or 'tpu'."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        platform = device.platform
        if platform == "gpu":
            capability = getattr(device, "compute_capability", None) or "0"
            return "gpu", float(str(capability).split(".")[0]) >= 8
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            major = (details.get("compute_capability") or (0, 0))[0]
            return "gpu", major >= 8
        platform = "cpu"
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return "gpu", torch.cuda.get_device_capability(0)[0] >= 8
        platform = "cpu"
    else:
        platform = "cpu"
    if platform == "tpu":
        return "tpu", True
    return "cpu", cpu_has_bfloat16()


def resolve(asked, native, allowed=PRECISIONS):
    """The policy for ``--precision asked`` on a device whose bfloat16 is ``native`` (or
    not), among the model's ``allowed`` ones."""
    if asked != "auto":
        return asked
    if native and "mixed_bfloat16" in allowed:
        return "mixed_bfloat16"
    return "float32"


def advice(asked, platform, native):
    """A one-line warning when the asked policy is emulated on this hardware, else None."""
    if asked == "mixed_bfloat16" and not native:
        what = (
            "this CPU has no AVX512_BF16, AMX or BF16"
            if platform == "cpu"
            else "this GPU (compute capability below 8.0) has no bfloat16 arithmetic"
        )
        return (
            f"--precision mixed_bfloat16: {what}; bfloat16 is emulated and steps can be many "
            "times slower than in float32 (--precision auto picks for the hardware)"
        )
    return None
