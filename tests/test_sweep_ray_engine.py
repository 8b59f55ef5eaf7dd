"""scaleadvise/sweep/ray_engine.py without starting Ray: the --address forms and the
resource check (a real local runtime runs in tests/test_sweep_cli.py)."""

import socket

import pytest

from scaleadvise.errors import UserError
from scaleadvise.sweep.ray_engine import RayEngine, check_address


@pytest.mark.parametrize("address", [None, "auto", "local", "head:6379", "10.0.0.5:6379", "ray://head:10001",
                                     "[::1]:6379"])
def test_address_forms(address):
    check_address(address)  # the form only: nothing is contacted


@pytest.mark.parametrize("address", ["http://head:6379", "head", "head:", ":6379", "head:0", "head:70000",
                                     "ray://", "a b:1"])
def test_bad_address_forms(address):
    with pytest.raises(UserError, match="expected auto, HOST:PORT or ray://HOST:PORT"):
        check_address(address)


def test_an_address_where_nothing_answers():
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match=f"nothing answers at 127.0.0.1:{port}"):
        check_address(f"127.0.0.1:{port}", connect=True)


def test_an_address_that_answers():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        check_address(f"ray://127.0.0.1:{s.getsockname()[1]}", connect=True)


class _FakeRay:
    def __init__(self, resources):
        self.resources = resources

    def cluster_resources(self):
        return self.resources


@pytest.mark.parametrize("cpus, gpus, have, match", [
    (1, 0, {"CPU": 2.0}, None),
    (2, 0.5, {"CPU": 2.0, "GPU": 1.0}, None),
    (4, 0, {"CPU": 2.0}, "--cpus-per-run 4: this machine has 2 CPUs for Ray"),
    (1, 1, {"CPU": 2.0}, "--gpus-per-run 1: this machine has 0 GPUs for Ray"),
])
def test_a_run_larger_than_the_local_machine_is_refused(cpus, gpus, have, match):
    engine = object.__new__(RayEngine)
    engine.ray = _FakeRay(have)
    if match is None:
        engine._check_resources(cpus, gpus, local=True)
    else:
        with pytest.raises(UserError, match=match):
            engine._check_resources(cpus, gpus, local=True)
    engine._check_resources(64, 8, local=False)  # a cluster may scale up to it
