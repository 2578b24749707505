"""``train-batch --distribute data``: data-parallel training on every device of one or several
processes, with Keras 3's ``keras.distribution.DataParallel`` on the JAX backend.

One process per GPU (started by ``srun``), or one process over all its local devices.  The
processes are found as :func:`keras.distribution.initialize` finds them — the variables
``KERAS_DISTRIBUTION_JOB_ADDRESSES`` (the coordinator first), ``KERAS_DISTRIBUTION_NUM_PROCESSES``
and ``KERAS_DISTRIBUTION_PROCESS_ID``, else SLURM's (``SLURM_NTASKS`` > 1 tasks of an ``srun``
step; the coordinator is the step's first node, port 61440 + job id mod 4096 or
``JAX_COORDINATOR_PORT``, as JAX derives it) — and joined with ``jax.distributed.initialize``
directly, because that is where the connection timeout can be given: a process that cannot
reach the coordinator must stop with one line naming it, not hang (JAX itself aborts the
process with a C++ stack trace).  So the ranks first meet in :func:`rendezvous` (through
:func:`meet`, before Keras is even imported), a plain TCP handshake on the coordinator's port
that times out after ``GALPREP_DISTRIBUTE_TIMEOUT`` seconds (default 300) with a one-line
:class:`~galtools.errors.GalError` on every process; :func:`start` then joins JAX's
distributed system and makes the Keras distribution.

Under the distribution, creating or assigning a variable is a collective operation (JAX checks
that every process passes the same value), and so is every compiled computation: the training
loop runs those on every rank, and rank 0's file writes (which build a throw-away optimizer
inside ``model.save``) outside the distribution (:meth:`Cluster.local`).

:class:`Cluster` is what the training loop sees: the rank, the process count, the devices, the
Keras distribution to train under, and the few collective operations the loop needs (agree on a
stop flag every step, a barrier, share rank 0's JSON with the others, predict split across
ranks and gather).  Without ``--distribute`` it is a one-process stand-in whose operations cost
nothing.
"""

import contextlib
import importlib.util
import json
import os
import re
import socket
import struct
import sys
import time
from dataclasses import dataclass

import numpy as np

from galtools.errors import GalError

MODES = ("data",)
TIMEOUT_ENV = "GALPREP_DISTRIBUTE_TIMEOUT"
DEFAULT_TIMEOUT = 300.0
_HELLO = b"galtools-rendezvous-1"


# ----------------------------------------------------------------------------------- backend


def use_backend(mode):
    """Make Keras load the backend ``mode`` needs (before Keras is imported), or say in one
    line why it cannot.  Nothing happens without a mode.

    This sets ``KERAS_BACKEND=jax`` in the process environment when Keras is not imported yet
    (Keras reads it once, at import): the one setting a library call leaves behind, because
    the process's Keras is then a JAX Keras for good (subprocesses inherit it too)."""
    if not mode:
        return
    if mode not in MODES:
        raise GalError(f"--distribute must be one of {', '.join(MODES)}, got {mode!r}")
    try:
        found = importlib.util.find_spec("jax")
    except (ImportError, ValueError):  # a blocked or broken jax
        found = None
    if found is None:
        raise GalError(
            "--distribute data runs on the JAX backend, and JAX is not installed: pip install "
            '"jax[cpu]" (or "jax[cuda12]" for NVIDIA GPUs)'
        )
    keras = sys.modules.get("keras")
    if keras is not None:
        try:
            backend = keras.backend.backend()
        except AttributeError:  # a half-imported keras
            backend = os.environ.get("KERAS_BACKEND", "?")
        if backend != "jax":
            raise GalError(
                f"--distribute data needs Keras' JAX backend, but Keras was already imported "
                f"with the {backend} backend in this process: set KERAS_BACKEND=jax before "
                "Keras is imported"
            )
        return
    chosen = os.environ.get("KERAS_BACKEND")
    if chosen and chosen != "jax":
        raise GalError(
            f"--distribute data needs Keras' JAX backend, but KERAS_BACKEND={chosen}: "
            "unset it or set KERAS_BACKEND=jax"
        )
    os.environ["KERAS_BACKEND"] = "jax"  # read once, when Keras is first imported


# ------------------------------------------------------------------------------ the processes


@dataclass(frozen=True)
class Launch:
    """How this process was started: ``count`` processes, this one ``rank``, meeting at
    ``coordinator`` (host:port); ``local_devices``: the device ids this process uses (None:
    all it sees); ``source``: where this was read."""

    coordinator: str
    count: int
    rank: int
    local_devices: tuple = None
    source: str = "KERAS_DISTRIBUTION_*"


def _int(env, name):
    text = env.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise GalError(f"{name}={text!r} is not a whole number") from None


def _first_host(nodelist):
    """'node[001-004,007],gpu2' → 'node001' (how SLURM compresses node lists)."""
    m = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not m:
        raise GalError(f"SLURM_STEP_NODELIST={nodelist!r} names no node")
    prefix, ranges = m.group(1), m.group(2)
    if not ranges:
        return prefix
    return prefix + re.split(r"[,-]", ranges)[0]


def _tasks_per_node(text, node):
    """Tasks of this step on node ``node`` from SLURM_STEP_TASKS_PER_NODE ('4(x2),3')."""
    counts = []
    for part in (text or "").split(","):
        m = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if not m:
            return None
        counts += [int(m.group(1))] * int(m.group(2) or 1)
    return counts[node] if 0 <= node < len(counts) else None


def _slurm(env):
    """The step's processes from SLURM's variables (an srun step of several tasks), or None."""
    needed = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID")
    if not all(env.get(k) for k in needed):
        return None
    count = _int(env, "SLURM_NTASKS")
    if count is None or count < 2:
        return None
    port = _int(env, "JAX_COORDINATOR_PORT")
    if port is None:
        port = _int(env, "SLURM_JOB_ID") % 4096 + 61440
    coordinator = f"{_first_host(env['SLURM_STEP_NODELIST'])}:{port}"
    local = None
    here = _tasks_per_node(env.get("SLURM_STEP_TASKS_PER_NODE"), _int(env, "SLURM_NODEID") or 0)
    visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if here and here > 1 and len(visible) != 1 and env.get("SLURM_LOCALID"):
        local = (_int(env, "SLURM_LOCALID"),)  # several tasks on this node: one GPU each
    return Launch(coordinator, count, _int(env, "SLURM_PROCID"), local, "SLURM")


def launch_from_env(env=None):
    """The :class:`Launch` of this process, or None when it runs alone.

    ``KERAS_DISTRIBUTION_*`` first (what is missing there comes from SLURM), else SLURM.
    """
    env = os.environ if env is None else env
    slurm = _slurm(env)
    addresses = env.get("KERAS_DISTRIBUTION_JOB_ADDRESSES", "").strip()
    count = _int(env, "KERAS_DISTRIBUTION_NUM_PROCESSES")
    rank = _int(env, "KERAS_DISTRIBUTION_PROCESS_ID")
    if not (addresses or count is not None or rank is not None):
        return slurm
    listed = [a.strip() for a in addresses.split(",") if a.strip()]
    if count is None:
        count = len(listed) if len(listed) > 1 else (slurm.count if slurm else None)
    if count is not None and len(listed) > 1 and count != len(listed):
        raise GalError(
            f"KERAS_DISTRIBUTION_JOB_ADDRESSES lists {len(listed)} processes but "
            f"KERAS_DISTRIBUTION_NUM_PROCESSES={count}"
        )
    if rank is None and slurm:
        rank = slurm.rank
    coordinator = listed[0] if listed else (slurm.coordinator if slurm else None)
    missing = [
        name
        for name, value in (
            ("KERAS_DISTRIBUTION_JOB_ADDRESSES", coordinator),
            ("KERAS_DISTRIBUTION_NUM_PROCESSES", count),
            ("KERAS_DISTRIBUTION_PROCESS_ID", rank),
        )
        if value is None
    ]
    if missing:
        raise GalError(f"--distribute data: {missing[0]} is not set (nor given by SLURM)")
    if count < 1 or not 0 <= rank < count:
        raise GalError(
            f"--distribute data: process id {rank} is not in 0..{count - 1} "
            "(KERAS_DISTRIBUTION_PROCESS_ID, KERAS_DISTRIBUTION_NUM_PROCESSES)"
        )
    if ":" not in coordinator:
        raise GalError(
            f"--distribute data: coordinator address {coordinator!r} needs a port (host:port)"
        )
    if count == 1:
        return None
    return Launch(coordinator, count, rank, slurm.local_devices if slurm else None)


def timeout_from_env(env=None):
    """Seconds to wait for the other processes (``GALPREP_DISTRIBUTE_TIMEOUT``)."""
    env = os.environ if env is None else env
    text = env.get(TIMEOUT_ENV)
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise GalError(f"{TIMEOUT_ENV}={text!r} must be a positive number of seconds")
    return value


def _split_address(address):
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "localhost", int(port)


def _recv_exact(sock, n):
    data = b""
    while len(data) < n:
        got = sock.recv(n - len(data))
        if not got:
            raise ConnectionError("closed")
        data += got
    return data


def rendezvous(launch, timeout):
    """Meet the other processes at the coordinator's port before JAX does, so that a missing
    or unreachable process ends in one line within ``timeout`` seconds on every process.

    Rank 0 listens on the port until every other rank has said hello (with its rank and the
    process count it was told), then answers them all at once and closes the port for JAX's
    coordination service to take it.  The others connect (again and again until it listens),
    say hello and wait for the answer.
    """
    host, port = _split_address(launch.coordinator)
    deadline = time.monotonic() + timeout
    where = f"the coordinator {launch.coordinator} ({launch.source})"
    hint = f"{TIMEOUT_ENV}={timeout:g}"
    if launch.rank == 0:
        _host_rendezvous(launch, port, deadline, where, hint, timeout)
        return
    reached = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            if reached:
                raise GalError(
                    f"--distribute data: process {launch.rank} of {launch.count} reached "
                    f"{where}, but not every process came within {timeout:g} s (see process "
                    f"0's message; {hint})"
                )
            raise GalError(
                f"--distribute data: process {launch.rank} of {launch.count} could not reach "
                f"{where} within {timeout:g} s (is process 0 running there? {hint})"
            )
        try:
            with socket.create_connection((host, port), timeout=min(left, 5.0)) as sock:
                reached = True
                sock.sendall(_HELLO + struct.pack("<ii", launch.rank, launch.count))
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                answer = _recv_exact(sock, len(_HELLO) + 1)
        except (OSError, ConnectionError):
            time.sleep(min(0.25, max(deadline - time.monotonic(), 0)))
            continue
        if answer != _HELLO + b"\x01":
            raise GalError(
                f"--distribute data: {where} refused process {launch.rank}: it was started "
                "with another process count (check KERAS_DISTRIBUTION_NUM_PROCESSES / srun -n)"
            )
        return


def _host_rendezvous(launch, port, deadline, where, hint, timeout):
    try:
        if socket.has_dualstack_ipv6():
            server = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
        else:
            server = socket.create_server(("", port))
    except OSError as exc:
        raise GalError(
            f"--distribute data: process 0 cannot listen on {where}: {exc.strerror or exc} "
            "(another job on this port? set JAX_COORDINATOR_PORT or another address)"
        ) from None
    peers = {}  # rank → its connection, answered once all are here
    try:
        with server:
            while len(peers) < launch.count - 1:
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(set(range(1, launch.count)) - set(peers))
                    raise GalError(
                        f"--distribute data: process 0 waited {timeout:g} s at {where} "
                        f"but process{'es' if len(missing) > 1 else ''} "
                        f"{', '.join(map(str, missing))} of {launch.count} never came "
                        f"(did every process start? {hint})"
                    )
                server.settimeout(min(left, 1.0))
                try:
                    sock, _ = server.accept()
                except (TimeoutError, socket.timeout):
                    continue
                try:
                    sock.settimeout(max(min(deadline - time.monotonic(), 10.0), 0.01))
                    hello = _recv_exact(sock, len(_HELLO) + 8)
                except (OSError, ConnectionError):
                    sock.close()
                    continue
                if not hello.startswith(_HELLO):
                    sock.close()  # not one of ours (a port scanner, a stale client)
                    continue
                rank, count = struct.unpack("<ii", hello[len(_HELLO) :])
                if count != launch.count or not 0 < rank < launch.count:
                    with contextlib.suppress(OSError):
                        sock.sendall(_HELLO + b"\x00")
                    sock.close()
                    raise GalError(
                        f"--distribute data: process {rank} at {where} was started for "
                        f"{count} processes, process 0 for {launch.count}"
                    )
                old = peers.pop(rank, None)
                if old is not None:  # a retry of the same rank
                    old.close()
                peers[rank] = sock
            for sock in peers.values():
                with contextlib.suppress(OSError):
                    sock.sendall(_HELLO + b"\x01")
            # let the others hang up first: the port is then free of this handshake for JAX
            for sock in peers.values():
                with contextlib.suppress(OSError, ConnectionError):
                    sock.settimeout(5.0)
                    sock.recv(1)
    finally:
        for sock in peers.values():
            sock.close()


# -------------------------------------------------------------------------------- the cluster


class Cluster:
    """The processes and devices a run trains on (one process, no distribution by default)."""

    def __init__(self, mode=None, rank=0, count=1, devices=(), distribution=None, launch=None):
        self.mode, self.rank, self.count = mode, rank, count
        self.devices = list(devices)
        self.distribution = distribution
        self.launch = launch
        self._predict = {}

    @property
    def main(self):
        """True on rank 0, the process that writes the run's files and talks."""
        return self.rank == 0

    @property
    def multi(self):
        return self.count > 1

    @property
    def part(self):
        """(rank, processes): this process's share of each global batch."""
        return self.rank, self.count

    def describe(self):
        """What config.json and metrics.json record about the processes and devices."""
        return {
            "distribute": self.mode,
            "processes": self.count,
            "devices": len(self.devices) if self.devices else 1,
            "device_kinds": sorted({d.split(":")[0] for d in self.devices}) or None,
        }

    @contextlib.contextmanager
    def scope(self):
        """Keras' distribution for what is built and trained inside (none without a mode)."""
        if self.distribution is None:
            yield
            return
        with self.distribution.scope():
            yield

    @contextlib.contextmanager
    def local(self):
        """No distribution inside (a rank-0-only model, e.g. the float32 copy that is saved)."""
        if self.distribution is None:
            yield
            return
        import keras

        saved = keras.distribution.distribution()
        keras.distribution.set_distribution(None)
        try:
            yield
        finally:
            keras.distribution.set_distribution(saved)

    # ------------------------------------------------------------------------ collectives

    def agree(self, *values):
        """Every rank's ``values`` (small integers) as a (processes, len(values)) array."""
        local = np.asarray(values, np.int32).reshape(1, -1)
        if not self.multi:
            return local
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(local, tiled=True))

    def barrier(self, name):
        """Wait until every rank has come here."""
        if self.multi:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"galtools:{name}")

    def share(self, value=None):
        """Rank 0's JSON-able ``value`` on every rank (others pass anything)."""
        if not self.multi:
            return value
        from jax.experimental import multihost_utils

        data = np.frombuffer(json.dumps(value).encode(), np.uint8) if self.main else None
        size = multihost_utils.broadcast_one_to_all(
            np.array([0 if data is None else data.size], np.int64)
        )
        size = int(np.asarray(size)[0])
        buf = data if data is not None else np.zeros(size, np.uint8)
        got = multihost_utils.broadcast_one_to_all(buf)
        return json.loads(np.asarray(got, np.uint8).tobytes().decode())

    def on_main(self, fn):
        """``fn()`` on rank 0 only; its JSON-able result on every rank; its error everywhere
        (rank 0 raises it, the others a GalError with its first line)."""
        if not self.multi:
            return fn()
        result, error = None, None
        if self.main:
            try:
                result = json.loads(json.dumps(fn()))  # not JSON-able: an error for all
            except BaseException as exc:  # every rank must hear of it, or they wait forever
                error = exc
        message = None
        if error is not None:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
        shared = self.share({"error": message, "result": result} if self.main else None)
        if error is not None:
            raise error
        if shared["error"] is not None:
            raise GalError(shared["error"])
        return shared["result"]

    def predict(self, model, x, batch_size):
        """``model``'s outputs for ``x`` (float32): under a distribution each device predicts
        its share of every batch of ``batch_size`` rows and the outputs are gathered, so every
        rank gets all of them; else ``model.predict_on_batch`` batch by batch."""
        x = np.asarray(x)
        if self.distribution is None:
            from galtools.train.evaluate import _predict_on_batch

            return _predict_on_batch(model, x, batch_size)
        import jax
        from jax.experimental import multihost_utils

        fn = self._predict.get(id(model))
        if fn is None or fn[0] is not model:

            def forward(trainable, non_trainable, inputs):
                out, _ = model.stateless_call(trainable, non_trainable, inputs, training=False)
                return out

            fn = self._predict[id(model)] = (model, jax.jit(forward))
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        per = batch_size // self.count
        outs = []
        for start in range(0, len(x), batch_size):
            chunk = x[start : start + batch_size]
            n = len(chunk)
            if n < batch_size:  # the same shape every time: one compilation
                pad = np.repeat(chunk[-1:], batch_size - n, axis=0)
                chunk = np.concatenate([chunk, pad])
            mine = chunk[self.rank * per : (self.rank + 1) * per]
            layout = self.distribution.get_data_layout(mine.shape).backend_layout
            inputs = jax.make_array_from_process_local_data(layout, mine)
            out = fn[1](trainable, non_trainable, inputs)
            if self.multi:
                out = multihost_utils.process_allgather(out, tiled=True)
            outs.append(np.asarray(out, np.float32)[:n])
        return np.concatenate(outs)


def meet(mode, batch_size):
    """Before anything heavy: the :class:`Launch` of ``--distribute MODE`` (None for one
    process, or without a mode), its global ``batch_size`` checked against the process count,
    and the processes met (:func:`rendezvous`).  Call :func:`use_backend` first."""
    if not mode:
        return None
    launch = launch_from_env()
    count = launch.count if launch else 1
    if batch_size % count:
        raise GalError(
            f"--batch-size {batch_size} (the global batch) does not divide by the {count} "
            f"processes of --distribute data: use a multiple of {count}"
        )
    if launch is not None and not _joined(launch):
        rendezvous(launch, timeout_from_env())
    return launch


def _joined(launch):
    """True when JAX's distributed system runs already (as this launch); GalError if else."""
    if "jax" not in sys.modules:
        return False
    import jax

    if not jax.distributed.is_initialized():
        return False
    if (jax.process_count(), jax.process_index()) != (launch.count, launch.rank):
        raise GalError(
            f"--distribute data: this process already joined {jax.process_count()} processes "
            f"as process {jax.process_index()}, not {launch.count} as {launch.rank}"
        )
    return True


def start(mode, batch_size, launch=None):
    """The :class:`Cluster` for ``--distribute MODE``, after :func:`meet` gave ``launch``:
    JAX's distributed system joined, the devices counted (the global ``batch_size`` must
    divide by them) and Keras' DataParallel over all of them.  Without a mode: the
    one-process stand-in."""
    if not mode:
        return Cluster()
    import jax

    if launch is not None and not _joined(launch):
        try:
            jax.distributed.initialize(
                coordinator_address=launch.coordinator,
                num_processes=launch.count,
                process_id=launch.rank,
                local_device_ids=list(launch.local_devices) if launch.local_devices else None,
                cluster_detection_method="deactivate",
                initialization_timeout=max(int(timeout_from_env()), 1),
            )
        except (RuntimeError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise GalError(
                f"--distribute data: joining {launch.count} processes at "
                f"{launch.coordinator} failed: {first}"
            ) from None
    import keras

    devices = keras.distribution.list_devices()
    count = launch.count if launch else 1
    if batch_size % len(devices):
        raise GalError(
            f"--batch-size {batch_size} (the global batch) does not divide by the "
            f"{len(devices)} devices of --distribute data ({count} process"
            f"{'es' if count > 1 else ''}): use a multiple of {len(devices)}"
        )
    distribution = keras.distribution.DataParallel(devices=devices)
    return Cluster(mode, jax.process_index(), jax.process_count(), devices, distribution, launch)
