"""Child processes that serve something: start one in its own process group, wait until it
answers its health check, and stop the whole group. `storyteller serve` runs its engine with it;
the benchmarks, the README's screenshot script and the tests run `storyteller serve` and
`storyteller app` with it — one way to do this, so a fix reaches all of them.

A child started with `die_with_parent=True` goes down with this process however it ends, kill -9
included: by Linux's parent-death signal where the kernel has it, and by a watchdog process
(which holds one end of a pipe and ends the child's process group when the pipe closes) where
it has not, or where the child's own children must go too (the signal reaches only the child).
The signal is KILL: an orphan's graceful stop is not worth the risk of it hanging (llama-server,
told TERM while idle, was seen to stop in its signal handler and stay, holding its port)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from queue import SimpleQueue
from threading import Thread

from storyteller.errors import InputError


PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2


def _prctl():
    """libc's prctl, looked up once in the parent (a forked child should only call it)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send this process `sig` when its parent dies, however it dies (kill -9
    included), so a worker is never left orphaned. False where the kernel cannot."""
    return _PRCTL is not None and _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def pdeathsig_supported() -> bool:
    """The parent-death signal can be asked for here (Linux); elsewhere a watchdog does it."""
    if _PRCTL is None:
        return False
    import ctypes

    current = ctypes.c_int(0)
    return _PRCTL(PR_GET_PDEATHSIG, ctypes.byref(current), 0, 0, 0) == 0


def _death_signal_in_child(parent: int, sig: int) -> Callable[[], None]:
    """What a child runs between fork and exec: ask for `sig` at the parent's death, then make
    sure the parent did not die before the request was made (it would never come)."""
    def ask() -> None:
        if _PRCTL is None or _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)
    return ask


class _Spawner:
    """Forks from one thread that lives as long as the process. Linux sends the parent-death
    signal when the *thread* that forked the child ends, not the process: a child started from
    a short-lived worker thread (a request handler's) would be signalled as soon as that
    thread was done. The main thread forks directly."""

    def __init__(self):
        self.jobs: SimpleQueue = SimpleQueue()
        self.lock = threading.Lock()
        self.thread: Thread | None = None

    def run(self, start: Callable[[], subprocess.Popen]) -> subprocess.Popen:
        if threading.current_thread() is threading.main_thread():
            return start()
        with self.lock:
            if self.thread is None:
                self.thread = Thread(target=self._serve, name="spawner", daemon=True)
                self.thread.start()
        done: Future = Future()
        self.jobs.put((start, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            start, done = self.jobs.get()
            try:
                done.set_result(start())
            except BaseException as exc:  # handed to the caller, raised in its thread
                done.set_exception(exc)


_SPAWNER = _Spawner()

# The watchdog: waits for end-of-file on its stdin, whose write end only the parent holds, so it
# comes when the parent exits in any way; then TERM to the child's group, KILL after a grace.
WATCHDOG = """
import os, signal, sys, time
group, grace = int(sys.argv[1]), float(sys.argv[2])
sys.stdin.buffer.read()
try:
    os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        time.sleep(0.1)
        os.killpg(group, 0)
    os.killpg(group, signal.SIGKILL)
except ProcessLookupError:
    pass
"""


def start_watchdog(group: int, grace: float = 10) -> subprocess.Popen:
    """A watchdog process for process group `group` (see WATCHDOG); kill it to release it."""
    return subprocess.Popen([sys.executable, "-c", WATCHDOG, str(group), str(grace)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


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
    is left behind. With `die_with_parent` the child also ends when this process dies without
    calling `stop` (kill -9, a crash). `guard` says how: "signal", the parent-death signal
    (KILL) where Linux has it, else a watchdog; "watchdog"; or "both", for a child whose own
    children must go too (the watchdog ends the whole group)."""

    def __init__(self, command: Sequence[str], name: str, env: Mapping[str, str] | None = None,
                 log: Path | None = None, cwd: Path | None = None, keep: int = 40,
                 die_with_parent: bool = False, guard: str = "signal"):
        self.name = name
        self.tail: deque[str] = deque(maxlen=keep)
        self.log = open(log, "a", encoding="utf-8") if log else None
        self.watchdog: subprocess.Popen | None = None
        if guard not in ("signal", "watchdog", "both"):
            raise ValueError(f"guard must be signal, watchdog or both, not {guard!r}")
        signal_guard = die_with_parent and guard != "watchdog" and pdeathsig_supported()
        preexec = _death_signal_in_child(os.getpid(), signal.SIGKILL) if signal_guard else None

        def start() -> subprocess.Popen:
            return subprocess.Popen(
                list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True, bufsize=1,
                preexec_fn=preexec)

        self.process = _SPAWNER.run(start) if signal_guard else start()
        if die_with_parent and (guard == "both" or not signal_guard):
            self.watchdog = start_watchdog(self.process.pid)
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
        if self.watchdog is not None:
            # Released by KILL, not by closing its pipe: it must not signal a group id that the
            # system may already have given to someone else.
            self.watchdog.kill()
            self.watchdog.wait()
            self.watchdog.stdin.close()
            self.watchdog = None
        if self.log:
            self.log.close()
            self.log = None
        return self.process.returncode

    def __enter__(self) -> "Process":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
