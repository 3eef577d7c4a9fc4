"""A real Ray cluster on loopback: `ray start --head --block` in its own process group, `metarl train --address`
joining it and `ray job submit --working-dir .` running metarl on it, two meta-iterations each; the test stops
exactly the processes it started (the head's process group, then any of its descendants by PID).

RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps `--node-ip-address 127.0.0.1` (otherwise Ray 2.60 swaps in the machine's
interface address), and every port is a free loopback port picked here, so nothing leaves this machine and nothing
collides with other Ray instances on it. Ray 2.60's `ray start` turns on token authentication (the token in
~/.ray/auth_token); drivers and the job CLI join with RAY_AUTH_MODE=token."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from processes import descendants

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TRAIN = ["configs/maml_trpo/2d_navigation.yaml", "--set=train.iterations=2", "--set=train.meta_batch_size=4",
         "--set=sampler.episodes_per_task=5", "--set=sampler.num_workers=2", "--set=log.progress=false"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env |= {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "RAY_USAGE_STATS_ENABLED": "0"}
    return env


def metrics(log_dir: Path) -> list[dict]:
    (run_dir,) = log_dir.iterdir()
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    ports = {name: free_port() for name in ("port", "dashboard-port", "dashboard-agent-listen-port",
                                            "dashboard-agent-grpc-port", "runtime-env-agent-port",
                                            "metrics-export-port", "ray-client-server-port", "node-manager-port",
                                            "object-manager-port")}
    log = (tmp / "head.log").open("w")
    ray_tmp = tempfile.mkdtemp(prefix="mrl-", dir="/tmp")  # short: Ray's AF_UNIX socket paths must fit 107 bytes
    proc = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=2",
         "--dashboard-host=127.0.0.1", f"--temp-dir={ray_tmp}", "--disable-usage-stats",
         *[f"--{name}={port}" for name, port in ports.items()]],
        cwd=ROOT, env=cluster_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    started: set[int] = set()
    try:
        while "Ray runtime started" not in (tmp / "head.log").read_text():
            assert proc.poll() is None, (tmp / "head.log").read_text()[-3000:]
            time.sleep(0.5)
        yield {"gcs": f"127.0.0.1:{ports['port']}", "dashboard": f"http://127.0.0.1:{ports['dashboard-port']}",
               "log": tmp / "head.log"}
    finally:
        started = {proc.pid} | descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGTERM)  # the head's own process group: `ray start` and what it spawned
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        for pid in started - {proc.pid}:  # anything of ours that left the group (none expected)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.slow
def test_train_joins_a_cluster_with_address(head, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "metarl", "train", *TRAIN, f"--set=log.dir={tmp_path}",
                           "--address", head["gcs"]], cwd=ROOT, env=cluster_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Connected to Ray cluster" in proc.stderr
    records = metrics(tmp_path)
    assert [r["iteration"] for r in records] == [1, 2]
    assert records[1]["env_steps"] > records[0]["env_steps"] > 0
    (run_dir,) = tmp_path.iterdir()
    assert f"address: {head['gcs']}" in (run_dir / "config.yaml").read_text()


@pytest.mark.slow
def test_driver_without_the_token_mode_gets_one_line_saying_so(head, tmp_path):
    env = cluster_env()
    del env["RAY_AUTH_MODE"]
    proc = subprocess.run([sys.executable, "-m", "metarl", "train", *TRAIN, f"--set=log.dir={tmp_path}",
                           "--address", head["gcs"]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "InvalidAuthToken" in lines[0] and "RAY_AUTH_MODE=token" in lines[0], proc.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_ray_job_submit_runs_metarl_on_the_cluster(head, tmp_path):
    command = [str(BIN / "ray"), "job", "submit", "--address", head["dashboard"], "--working-dir", ".", "--",
               "python", "-m", "metarl", "train", *TRAIN, f"--set=log.dir={tmp_path}"]
    for _ in range(20):  # the job server needs its node agent, which registers a little after `ray start` returns
        proc = subprocess.run(command, cwd=ROOT, env=cluster_env(), capture_output=True, text=True, timeout=600)
        if "No available agent" not in proc.stderr:
            break
        time.sleep(3)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert "succeeded" in proc.stdout
    records = metrics(tmp_path)
    assert [r["iteration"] for r in records] == [1, 2]
    assert records[1]["env_steps"] > records[0]["env_steps"] > 0
