"""Exports on Ray actors: pipeline stages across processes or hosts, and replicas.

    pipe = sw.distributed.RayPipeline("gpt2-pp")              # local Ray, one actor per stage
    pipe = sw.distributed.RayPipeline("gpt2-pp", address="ray://head:10001")   # a cluster
    logits = pipe(ids, lengths)          # a batch of k x the exported batch: k micro-batches
    outs = pipe.map([(ids1, len1), (ids2, len2)])           # independent requests, overlapped
    many = sw.distributed.Replicas("gpt2", replicas=2)        # N copies behind one call
    outs = many.map(requests)                                # spread over the copies

Each actor loads its export folder once (read from the same path on one machine; sent
through Ray's object store to a cluster, which needs no shared file system) and keeps
it. Activations go from stage to stage through the object store: a stage's call takes
the reference the previous stage returned, so Ray moves the data between hosts and the
driver only waits for the last stage. Calls to one actor run in submission order, so
micro-batch ``i + 1`` enters stage 0 while micro-batch ``i`` is in stage 1.

An actor that dies is restarted once (it loads its stage again) and its call retried;
if it dies again, the call fails with an error naming the stage. IREE's CPU runtime
in an actor uses ``threads`` worker threads (default 1: one thread per replica or
stage). Ray is optional: ``pip install 'stepwell[ray]'``.
"""

from __future__ import annotations

import itertools
import os

import numpy as np

from stepwell.core.diagnostics import StepwellError

INSTALL = "pip install 'stepwell[ray]' (or pip install 'ray>=2.40,<3')"


def ray_module():
    """The ``ray`` package, or a StepwellError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise StepwellError(f"Ray is not installed: {INSTALL}") from None
    return ray


def connect(address: str | None = None, **init_kwargs):
    """Start a local Ray (``address=None``) or join a cluster, unless Ray is running."""
    ray = ray_module()
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        kwargs = {"include_dashboard": False, "log_to_driver": False, **init_kwargs}
        if address is None:
            kwargs.setdefault("_node_ip_address", "127.0.0.1")
        try:
            ray.init(address=address, **kwargs)
        except Exception as e:  # noqa: BLE001  (ConnectionError, RuntimeError...)
            raise StepwellError(f"cannot start Ray{f' at {address}' if address else ''}: "
                                f"{str(e).strip().splitlines()[0]}") from None
    return ray


def _folder_files(path: str) -> dict:
    """Every file of an export folder, to send to an actor on another host."""
    return {name: open(os.path.join(path, name), "rb").read() for name in sorted(os.listdir(path))
            if os.path.isfile(os.path.join(path, name))}


class _Worker:
    """Loads one export folder (by path, or from its files) and runs its ``main``."""

    def __init__(self, source, threads: int | None, load_kwargs: dict):
        if threads:
            import iree.runtime as rt
            rt.flags.parse_flags(f"--task_topology_group_count={threads}")
        from stepwell.distributed.stages import load
        if not isinstance(source, dict):
            self.model = load(source, **load_kwargs)
            return
        import shutil
        import tempfile
        path = tempfile.mkdtemp(prefix="stepwell-stage-")  # the files, sent through the object store
        try:
            for name, data in source.items():
                with open(os.path.join(path, name), "wb") as f:
                    f.write(data)
            self.model = load(path, **load_kwargs)
        finally:  # loaded: the module is in memory, the open parameter archive outlives its name
            shutil.rmtree(path, ignore_errors=True)

    def ready(self) -> int:
        return os.getpid()

    def run(self, values) -> list:
        """The module's flat results for flat inputs (one stage's step)."""
        out = self.model.executable.function("main")(*values)
        return list(out) if isinstance(out, tuple) else [out]

    def call(self, *args):
        """The exported function called like ``sw.load(path)(*args)``."""
        return self.model(*args)


class _Actors:
    def _start(self, sources, address, num_cpus, threads, ready_timeout, load_kwargs, ship):
        ray = connect(address)
        self._ray = ray
        send = (address is not None) if ship is None else ship
        remote = ray.remote(num_cpus=num_cpus, max_restarts=1, max_task_retries=1)(_Worker)
        self.actors = [remote.remote(ray.put(_folder_files(s)) if send else s, threads, load_kwargs)
                       for s in sources]
        try:
            self.pids = ray.get([a.ready.remote() for a in self.actors], timeout=ready_timeout)
        except ray.exceptions.GetTimeoutError:
            self.close()
            free = ray.available_resources().get("CPU", 0)
            raise StepwellError(f"Ray could not start {len(sources)} actors of {num_cpus} CPU each "
                                f"within {ready_timeout} s ({free:g} CPUs free): give Ray more CPUs or "
                                f"ask for fewer (num_cpus=)") from None
        except ray.exceptions.RayError as e:
            self.close()
            raise StepwellError(f"a Ray actor could not load its model: {_cause(e)}") from None

    def _get(self, refs, what):
        ray = self._ray
        try:
            return ray.get(refs)
        except ray.exceptions.RayActorError as e:
            ids = [a._actor_id.hex() for a in self.actors]
            who = getattr(e, "actor_id", None)
            if who in ids:
                what = f"{self.kind} {ids.index(who)} (Ray actor {who[:8]})"
            raise StepwellError(f"{what} died and could not be restarted: {_cause(e)}") from None
        except ray.exceptions.RayTaskError as e:
            cause = e.cause if isinstance(getattr(e, "cause", None), StepwellError) else None
            if cause is not None:
                raise cause from None
            raise StepwellError(f"{what} failed: {_cause(e)}") from None

    def close(self) -> None:
        """Stop the actors (Ray itself keeps running)."""
        for a in getattr(self, "actors", []):
            try:
                self._ray.kill(a)
            except Exception:  # noqa: BLE001
                pass
        self.actors = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _cause(e) -> str:
    text = str(e).strip().splitlines()
    return next((line.strip() for line in reversed(text) if line.strip()), type(e).__name__)[:300]


class RayPipeline(_Actors):
    """A pipeline folder (``sw.jax.export(..., stages=N)``) with one Ray actor per stage."""

    kind = "pipeline stage"

    def __init__(self, path, *, address: str | None = None, num_cpus: float = 1,
                 threads: int | None = 1, ready_timeout: float = 300, ship: bool | None = None,
                 **load_kwargs):
        from stepwell.distributed.stages import read_pipeline
        path = os.fspath(path)
        manifest = read_pipeline(path)
        if manifest is None:
            raise StepwellError(f"'{path}' is not a pipeline export: write one with "
                                "sw.jax.export(..., stages=N)")
        self.path, self.manifest = path, manifest
        self.stage_inputs = [s["inputs"] for s in manifest["stages"]]
        self._start([os.path.join(path, s["folder"]) for s in manifest["stages"]], address,
                    num_cpus, threads, ready_timeout, load_kwargs, ship)

    def __repr__(self) -> str:
        return f"<stepwell.RayPipeline {self.manifest.get('name')}: {len(self.actors)} stages on Ray>"

    def _submit(self, flat: list):
        ref = flat
        for stage in self.actors:
            ref = stage.run.remote(ref)  # a reference: Ray hands the data from actor to actor
        return ref

    def _flat(self, args) -> list:
        from stepwell.export.pytree import OPAQUE, flatten
        tree = (self.manifest["entry_points"]["main"].get("input_tree") or {}).get("spec", OPAQUE)
        leaves = list(args) if tree is OPAQUE else flatten(tree, tuple(args))
        return [np.asarray(a) for a in leaves]

    def _result(self, flat):
        from stepwell.export.pytree import OPAQUE, unflatten
        tree = (self.manifest["entry_points"]["main"].get("output_tree") or {}).get("spec", OPAQUE)
        return tuple(flat) if tree is OPAQUE else unflatten(tree, list(flat))

    def __call__(self, *args):
        """One call; inputs with ``k`` times the exported batch run as ``k`` micro-batches
        that overlap in the stages, their results joined along the batch."""
        flat = self._flat(args)
        parts = self._micro_batches(flat)
        outs = self._get([self._submit(p) for p in parts], "a pipeline stage")
        joined = [np.concatenate([o[i] for o in outs]) if len(outs) > 1 else outs[0][i]
                  for i in range(len(outs[0]))]
        return self._result(joined)

    def map(self, requests) -> list:
        """Independent requests (each a tuple of arguments), overlapped in the stages."""
        refs = [self._submit(self._flat(r if isinstance(r, tuple) else (r,))) for r in requests]
        return [self._result(o) for o in self._get(refs, "a pipeline stage")]

    def _micro_batches(self, flat):
        shapes = [tuple(i["shape"]) for i in self.stage_inputs[0]]
        if [a.shape for a in flat] == shapes:
            return [flat]
        batch = shapes[0][0] if shapes and shapes[0] else None
        counts = {a.shape[0] // batch for a, s in zip(flat, shapes) if batch and a.ndim and
                  a.shape[0] % batch == 0 and a.shape[1:] == s[1:] and s[0] == batch}
        if len(counts) != 1 or any(a.ndim and a.shape[0] // batch not in counts for a in flat):
            want = ", ".join(f"{i['dtype']}{i['shape']}" for i in self.stage_inputs[0])
            got = ", ".join(f"{a.dtype}{list(a.shape)}" for a in flat)
            raise StepwellError(f"the pipeline takes ({want}), or k times that batch; got ({got})")
        k = counts.pop()
        return [[a[j * batch:(j + 1) * batch] for a in flat] for j in range(k)]


class Replicas(_Actors):
    """``replicas`` copies of an export folder on Ray actors behind one call."""

    kind = "replica"

    def __init__(self, path, replicas: int = 2, *, address: str | None = None, num_cpus: float = 1,
                 threads: int | None = 1, ready_timeout: float = 300, ship: bool | None = None,
                 **load_kwargs):
        if replicas < 1:
            raise StepwellError(f"replicas must be at least 1, not {replicas}")
        self.path = os.fspath(path)
        self._start([self.path] * replicas, address, num_cpus, threads, ready_timeout, load_kwargs, ship)
        self._next = itertools.cycle(range(replicas))

    def __repr__(self) -> str:
        return f"<stepwell.Replicas {self.path}: {len(self.actors)} on Ray>"

    def __call__(self, *args):
        i = next(self._next)
        return self._get(self.actors[i].call.remote(*args), f"{self.kind} {i}")

    def map(self, requests) -> list:
        """Each request (a tuple of arguments) on the next replica; all at once."""
        refs = [self.actors[next(self._next)].call.remote(*(r if isinstance(r, tuple) else (r,)))
                for r in requests]
        return self._get(refs, "a replica")
