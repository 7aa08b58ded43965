"""Where trials run: a local process pool (default) or a Ray cluster.

Both run the same pure functions (``trial.compile_candidate``, ``trial.benchmark``).
Compiles fan out: to ``jobs`` local worker processes, or to every CPU of a Ray cluster.
Benchmarks run one at a time per host so that trials never disturb each other: locally
in this process; on Ray as tasks that each hold the custom resource ``stepwell_bench``,
of which each host offers one (``ray start --resources='{"stepwell_bench": 1}'``; the
local cluster ``--ray local`` starts with it). A cluster without that resource
benchmarks in this process. Results measured on another host are recorded under that
host's target key (its CPU and thread count).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import signal

from stepwell.core.diagnostics import StepwellError
from stepwell.tuner import trial

__all__ = ["LocalBackend", "RayBackend", "make_backend", "RESOURCE"]

RESOURCE = "stepwell_bench"


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


def bench_on_host(task, vmfbs, target_spec, kwargs):
    """(this host's target key, measurements): what a benchmark task returns."""
    from stepwell.compiler.tuning_keys import target_key
    return target_key(target_spec), trial.benchmark(task, vmfbs, target_spec, **kwargs)


class LocalBackend:
    """Compiles in ``jobs`` spawned processes; benchmarks in this process."""
    name = "local"

    def __init__(self, jobs: int | None = None):
        from stepwell.passes.linalg_data_tile import threads
        self.jobs = max(1, jobs or threads())
        self._pool = None

    def _executor(self):
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_ignore_sigint)
        return self._pool

    def compile_many(self, task, configs, target_spec):
        """Yield a :class:`~stepwell.tuner.trial.Compiled` per configuration as each finishes."""
        pool = self._executor()
        futures = {pool.submit(trial.compile_candidate, task, c, target_spec): c for c in configs}
        for fut in cf.as_completed(futures):
            try:
                yield fut.result()
            except cf.process.BrokenProcessPool as e:
                self.close()  # a new pool for the next wave
                yield trial.Compiled(futures[fut], None, f"the compile worker died ({e})")

    def benchmark(self, task, vmfbs, target_spec, **kwargs):
        return bench_on_host(task, vmfbs, target_spec, kwargs)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class RayBackend:
    """Compiles as Ray tasks over the cluster; benchmarks one per host (``stepwell_bench``)."""
    name = "ray"

    def __init__(self, address: str | None = "auto"):
        try:
            import ray
        except ImportError:
            raise StepwellError("--ray needs Ray: pip install \"stepwell[ray]\"") from None
        self.ray = ray
        if not ray.is_initialized():
            if address in (None, "local"):
                ray.init(resources={RESOURCE: 1}, include_dashboard=False, log_to_driver=False)
            else:
                try:
                    ray.init(address=address, include_dashboard=False, log_to_driver=False)
                except Exception as e:  # noqa: BLE001  (Ray raises ConnectionError, RuntimeError, ...)
                    raise StepwellError(f"cannot connect to the Ray cluster at '{address}': {e}") from None
        self._compile = ray.remote(num_cpus=1)(trial.compile_candidate)
        self.hosts = int(ray.cluster_resources().get(RESOURCE, 0))
        self._bench = ray.remote(num_cpus=1, resources={RESOURCE: 1})(bench_on_host) if self.hosts else None
        self.jobs = int(ray.cluster_resources().get("CPU", 1))

    def compile_many(self, task, configs, target_spec):
        ray = self.ray
        refs = {self._compile.remote(task, c, target_spec): c for c in configs}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                yield ray.get(done[0])
            except Exception as e:  # noqa: BLE001  (a worker lost: the candidate is rejected)
                yield trial.Compiled(refs[done[0]], None, f"the Ray compile task failed: {e}")

    def benchmark(self, task, vmfbs, target_spec, **kwargs):
        if self._bench is None:
            return bench_on_host(task, vmfbs, target_spec, kwargs)
        kwargs = dict(kwargs, deadline=None)  # (monotonic clocks differ between hosts)
        return self.ray.get(self._bench.remote(task, vmfbs, target_spec, kwargs))

    def close(self) -> None:
        pass  # the cluster outlives the search


def make_backend(ray: str | None = None, jobs: int | None = None):
    """``ray=None``: the local pool; ``"auto"``/an address/``"local"``: Ray."""
    return LocalBackend(jobs) if ray is None else RayBackend(ray)
