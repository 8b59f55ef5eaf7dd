"""The Ray edge: start (or join) a Ray runtime and run each sweep run as one Ray task.

Everything Ray-specific is here; the scheduling loop (runner.py) sees an engine with
submit / wait / cancel / shutdown. Ray is imported only when a sweep has work to do.

- Default: a local runtime started for this sweep (no dashboard, quiet logs, usage
  statistics off unless the user chose otherwise), shut down at the end. RAY_ADDRESS
  in the environment is honoured, as by every Ray program.
- ``--address auto`` joins a cluster started with `ray start` on this machine,
  ``--address HOST:PORT`` or ``ray://HOST:PORT`` a remote one. The script, --out and
  any data the script reads must then be at the same path on every node (a shared
  filesystem): runs write their folders where they run.
- Each task asks for num_cpus / num_gpus (Ray gives it CUDA_VISIBLE_DEVICES for its
  GPUs) and is never retried by Ray: a rerun of the sweep resumes it instead.
"""

import os
import re
import socket

from scaleadvise.errors import UserError
from scaleadvise.sweep import task as task_module

INSTALL = "scaleadvise sweep needs Ray: pip install 'scaleadvise[sweep]'"


_HOST_PORT = re.compile(r"^(?:ray://)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def check_address(address: str | None, connect: bool = False) -> None:
    """--address is auto, local, HOST:PORT or ray://HOST:PORT; with ``connect``, something must
    answer at HOST:PORT (Ray itself would retry for minutes before giving up)."""
    if address is None or address in ("auto", "local"):
        return
    m = _HOST_PORT.match(address.strip())
    if not m or not 0 < int(m.group(2)) < 65536:
        raise UserError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    host, port = m.group(1).strip("[]"), int(m.group(2))
    if not connect:
        return
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as e:
        raise UserError(f"--address {address}: nothing answers at {host}:{port} "
                        f"({e.strerror or type(e).__name__})") from None


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError(INSTALL) from None
    return ray


class RayEngine:
    def __init__(self, address: str | None, cpus_per_run: float, gpus_per_run: float):
        ray = import_ray()
        check_address(address, connect=True)
        self.ray = ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        local = address in (None, "local") and not (address is None and os.environ.get("RAY_ADDRESS"))
        kwargs = dict(logging_level="ERROR", log_to_driver=False)
        if local:
            kwargs.update(include_dashboard=False, address="local")
        else:
            kwargs.update(address=address)
        try:
            ray.init(**kwargs)
        except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
            where = f"--address {address}" if address else f"RAY_ADDRESS={os.environ.get('RAY_ADDRESS')}" \
                if not local else "the local Ray runtime"
            hint = "; a cluster with token authentication needs RAY_AUTH_MODE=token here" \
                if not local and "RAY_AUTH_MODE" not in os.environ else ""
            raise UserError(f"{where}: cannot start or join Ray ({' '.join(str(e).split())[:300]}){hint}") from None
        self.address = "local" if local else address
        try:
            self._check_resources(cpus_per_run, gpus_per_run, local)
        except BaseException:
            ray.shutdown()
            raise
        ray.cloudpickle.register_pickle_by_value(task_module)  # workers need not have scaleadvise
        self._remote = ray.remote(task_module.run_one).options(
            num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0, retry_exceptions=False)

    def _check_resources(self, cpus: float, gpus: float, local: bool) -> None:
        """A run asking for more than any node has would wait forever: refuse it here (on a
        local runtime; an autoscaling cluster may add the nodes it needs)."""
        have = self.ray.cluster_resources()
        for flag, need, key in (("--cpus-per-run", cpus, "CPU"), ("--gpus-per-run", gpus, "GPU")):
            if local and need > have.get(key, 0):
                raise UserError(f"{flag} {need:g}: this machine has {have.get(key, 0):g} {key}s for Ray")

    def describe(self) -> dict:
        have = self.ray.cluster_resources()
        return {"address": self.address, "cpus": have.get("CPU", 0), "gpus": have.get("GPU", 0),
                "nodes": len([n for n in self.ray.nodes() if n.get("Alive")])}

    def submit(self, spec: dict):
        return self._remote.remote(spec)

    def wait(self, handles: list, timeout: float) -> list[tuple[object, dict | BaseException]]:
        """The handles that finished within ``timeout`` s, each with its outcome or the
        exception Ray raised for it (worker crash, cancellation, out of memory)."""
        if not handles:
            return []
        ready, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self.ray.wait(handles, num_returns=len(handles), timeout=0)
        done = []
        for ref in ready:
            try:
                done.append((ref, self.ray.get(ref)))
            except Exception as e:  # RayTaskError, WorkerCrashedError, TaskCancelledError, OutOfMemoryError
                done.append((ref, e))
        return done

    def cancel(self, handles: list, force: bool = False) -> None:
        for ref in handles:
            try:
                self.ray.cancel(ref, force=force)
            except Exception:  # already finished
                pass

    def is_cancelled(self, error: BaseException) -> bool:
        return isinstance(error, self.ray.exceptions.TaskCancelledError)

    def shutdown(self) -> None:
        self.ray.shutdown()
