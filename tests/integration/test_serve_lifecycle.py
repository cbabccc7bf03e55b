"""Engines go down with the server however it ends: a real `storyteller serve` of the tiny
model, its engines listed, the server killed with SIGKILL (no chance to stop anything), and no
engine left within seconds; and the two guards of storyteller.processes underneath it (the
parent-death signal from a long-lived thread, the watchdog for a whole process group)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT
from tests.integration.served import start_server

pytestmark = pytest.mark.slow


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper is gone for this purpose)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    """The pids still alive after up to `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def engine_ports(pid: int) -> list[int]:
    """The loopback ports an engine process listens on."""
    return sorted({c.laddr.port for c in psutil.Process(pid).net_connections()
                   if c.status == psutil.CONN_LISTEN})


@pytest.mark.parametrize("backend", ["llama.cpp", "transformers"])
def test_a_killed_server_leaves_no_engine_behind(backend):
    process, url = start_server(Path("tiny-random"), "--set", f"cpu.backend={backend}")
    try:
        # A second engine, started by a request (from a worker thread of the server).
        request = urllib.request.Request(
            f"{url}/v1/storyteller/models", method="POST",
            data=json.dumps({"name": "second", "path": "tiny-random"}).encode(),
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as answer:
            assert json.loads(answer.read())["id"] == "second"
        engines = psutil.Process(process.pid).children()
        assert len(engines) == 2, [e.cmdline() for e in engines]
        # Every process under the server (an engine may start helpers of its own).
        pids = [p.pid for p in psutil.Process(process.pid).children(recursive=True)]
        ports = [port for e in engines for port in engine_ports(e.pid)]
        assert len(ports) >= 2
        os.kill(process.pid, signal.SIGKILL)
        assert wait_gone(pids, 5) == [], "engines outlived the killed server"
        # Nothing of theirs still listens. (A port may already be another test's: the suite
        # runs in parallel and a freed port is soon handed out again.)
        listening = [c for c in psutil.net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port in ports]
        assert not [c for c in listening if c.pid in pids], listening
    finally:
        process.stop(grace=5)


PARENT = textwrap.dedent("""
    import sys, threading, time
    from storyteller.processes import Process
    guard = sys.argv[1]
    made = []
    # Started from a thread that ends at once: the parent-death signal must not come with it.
    worker = threading.Thread(target=lambda: made.append(Process(
        ["sh", "-c", "sleep 300 & echo $!; wait"], "child", die_with_parent=True, guard=guard)))
    worker.start(); worker.join()
    child = made[0]
    while not child.tail:
        time.sleep(0.05)
    print(child.pid, child.tail[0], flush=True)
    time.sleep(300)
""")


@pytest.mark.parametrize("guard, gone", [("signal", "child"), ("watchdog", "group"),
                                         ("both", "group")])
def test_a_child_goes_with_its_killed_parent(guard, gone):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, guard], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    try:
        child, grandchild = map(int, parent.stdout.readline().split())
        time.sleep(1.0)  # the thread that forked the child has long ended
        assert alive(child) and alive(grandchild)
        parent.kill()
        parent.wait()
        assert wait_gone([child], 5) == []
        if gone == "group":
            # The watchdog ends the whole group: the child's own children too.
            assert wait_gone([grandchild], 5) == []
    finally:
        parent.kill()
        for pid in (locals().get("child"), locals().get("grandchild")):
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)
