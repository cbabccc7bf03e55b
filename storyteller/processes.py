"""Child processes that serve something: start one in its own process group, wait until it
answers its health check, and stop the whole group. `storyteller serve` runs its engine with it;
the benchmarks, the README's screenshot script and the tests run `storyteller serve` and
`storyteller app` with it — one way to do this, so a fix reaches all of them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from threading import Thread

from storyteller.errors import InputError


PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send this process `sig` when its parent dies, however it dies (kill -9
    included), so a worker is never left orphaned. False where the kernel cannot."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the system's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def bind_error(host: str, port: int) -> OSError | None:
    """Why nothing could listen on host:port now (None: it could)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def port_is_free(host: str, port: int) -> bool:
    return bind_error(host, port) is None


def check_port(host: str, port: int) -> None:
    """Fail before anything spends minutes loading if the address is taken."""
    error = bind_error(host, port)
    if error is not None:
        raise InputError.at(f"--host {host} --port {port}", f"cannot listen there: "
                            f"{error.strerror or error}", "pick another --port, or stop what "
                            "runs there (another storyteller serve?)")


def answers(url: str, timeout: float = 2) -> bool:
    """`url` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Process:
    """A child process in its own process group, its output (stdout and stderr together) kept:
    the last lines explain a failed start. `stop` ends the whole group, so nothing it started
    is left behind."""

    def __init__(self, command: Sequence[str], name: str, env: Mapping[str, str] | None = None,
                 log: Path | None = None, cwd: Path | None = None, keep: int = 40):
        self.name = name
        self.tail: deque[str] = deque(maxlen=keep)
        self.log = open(log, "a", encoding="utf-8") if log else None
        self.process = subprocess.Popen(
            list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True, bufsize=1)
        self._drained = Thread(target=self._drain, daemon=True)
        self._drained.start()

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.tail.append(line.rstrip())
            log = self.log
            if log:
                try:
                    log.write(line)
                    log.flush()
                except ValueError:  # closed by stop() meanwhile
                    pass

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def last_words(self, lines: int = 15) -> str:
        return "\n  ".join(list(self.tail)[-lines:])

    def output(self) -> str:
        """All the lines kept (the last `keep`), stdout and stderr together."""
        return "\n".join(self.tail)

    def wait(self, timeout: float | None = None) -> int:
        """Until the process exits by itself: its exit code, once its last output is read."""
        code = self.process.wait(timeout=timeout)
        self._drained.join(timeout=2)
        return code

    def wait_healthy(self, url: str, timeout: float,
                     progress: Callable[[], None] | None = None, slow_hint: str = "") -> None:
        """Poll `url` until it answers 200; fail with the process's last output if it exits
        or the timeout passes (the process is then stopped; `slow_hint` says what to do)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._drained.join(timeout=2)
                raise InputError.at(self.name, f"exited with code {self.process.returncode} "
                                    f"while starting:\n  {self.last_words()}",
                                    "see the lines above")
            if answers(url):
                return
            if progress:
                progress()
            time.sleep(0.5)
        self.stop()
        path = urllib.parse.urlsplit(url).path or url
        raise InputError.at(self.name, f"did not answer {path} within {timeout:.0f} s",
                            f"{slow_hint + ', or ' if slow_hint else ''}look at its output:"
                            f"\n  {self.last_words()}")

    def stop(self, grace: float = 10) -> int | None:
        """TERM to the group, KILL after `grace` seconds; the exit code."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=grace)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout=grace)
        if self.log:
            self.log.close()
            self.log = None
        return self.process.returncode

    def __enter__(self) -> "Process":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
