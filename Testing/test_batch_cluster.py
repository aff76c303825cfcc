"""`sssseg batch --ray-address`: a 2-node Ray cluster simulated on this machine finishes every case.

The test starts the cluster itself (`ray start --head`, then a second `ray start --address` with its
own CPU and a resource of its own), on loopback addresses, with explicit CPUs and small memory,
token authentication with a token of its own, every wait bounded; it ends both nodes (their
process groups, which it created) in a `finally`, and checks that none of their processes is left.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from test_batch import PROJECT_ROOT, SSSSEG, read_table, write_bad_studies, write_phantoms

RAY = Path(sys.executable).parent / "ray"
HEAD_IP, NODE_IP = "127.0.0.2", "127.0.0.3"  # loopback; Ray would turn 127.0.0.1 into the host's address
START_TIMEOUT_S = 180
STOP_GRACE_S = 20
BATCH_TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout_s} s")
        time.sleep(0.5)


def _group_alive(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that are still running (zombies excluded)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(int(stat.parent.name))
    return alive


def _node_command(common: list[str], head_port: int | None) -> list[str]:
    if head_port is None:
        return [str(RAY), "start", "--block", "--head", f"--port={_free_port()}", f"--node-ip-address={HEAD_IP}",
                "--include-dashboard=false", f"--dashboard-port={_free_port()}", *common]
    return [str(RAY), "start", "--block", f"--address={HEAD_IP}:{head_port}", f"--node-ip-address={NODE_IP}",
            '--resources={"second_node": 1}', *common]


@contextlib.contextmanager
def ray_cluster(log_dir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """Two Ray nodes on this machine, 1 CPU each; yields (address, environment for a driver)."""
    temp = tempfile.mkdtemp(prefix="r25_", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus=1", "--memory=1000000000", "--object-store-memory=80000000", "--disable-usage-stats",
              f"--temp-dir={temp}", f"--dashboard-agent-listen-port={_free_port()}"]
    nodes: list[subprocess.Popen] = []
    try:
        head_cmd = _node_command(common, None)
        port = int(next(a for a in head_cmd if a.startswith("--port=")).split("=")[1])
        for name, command in (("head", head_cmd), ("node2", _node_command(common, port))):
            log = log_dir / f"ray_{name}.log"
            with open(log, "w") as fh:
                nodes.append(subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                              start_new_session=True, cwd=log_dir))
            _wait_for(lambda log=log: "Ray runtime started" in log.read_text(), START_TIMEOUT_S, f"ray {name}")
        yield f"{HEAD_IP}:{port}", env
    finally:
        _stop(nodes)
        shutil.rmtree(temp, ignore_errors=True)


def _stop(nodes: list[subprocess.Popen]) -> None:
    """End the nodes' process groups: SIGTERM, then SIGKILL after STOP_GRACE_S; none may be left."""
    for node in reversed(nodes):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while any(_group_alive(n.pid) for n in nodes) and time.monotonic() < deadline:
        time.sleep(0.5)
    for node in nodes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)
        node.wait(timeout=30)
    _wait_for(lambda: not any(_group_alive(n.pid) for n in nodes), 30, "the Ray nodes to end")


def test_a_batch_joins_a_two_node_ray_cluster_and_finishes_every_case(tmp_path: Path) -> None:
    scans = write_phantoms(tmp_path / "in", range(740, 744))
    write_bad_studies(tmp_path / "in", scans[0])
    out = tmp_path / "out"
    with ray_cluster(tmp_path) as (address, env):
        proc = subprocess.run([*SSSSEG, "batch", str(tmp_path / "in"), str(out), "--ray-address", address,
                               "--workers", "2", "--cpus-per-worker", "1", "--progress", "json"],
                              capture_output=True, text=True, timeout=BATCH_TIMEOUT_S, cwd=PROJECT_ROOT, env=env)
    assert proc.returncode == 5, proc.stderr[-3000:]
    rows = {r["case_id"]: r for r in read_table(out / "results.csv")}
    assert sorted(rows) == sorted([f"case{s}" for s in range(740, 744)] + ["mr_like", "truncated"])
    assert [rows[f"case{s}"]["status"] for s in range(740, 744)] == ["ok"] * 4
    assert rows["mr_like"]["status"] == rows["truncated"]["status"] == "failed"
    assert all((out / rows[f"case{s}"]["label_file"]).is_file() for s in range(740, 744))
    nodes = {r["worker"].split("@")[1] for r in rows.values()}
    assert len(nodes) == 2, f"the cases ran on {nodes}: one worker per node (1 CPU each) was expected"
