"""`serve` as one service made of two processes: the parent forks the webhook and the worker, passes them its
signals, relays their log lines and ends with one exit status (docs/operations.md#roles says why and what an
operator sees).

- **Fork, after every check.** The parent has read the config, checked the handlers, the store and the port, and
  holds the listening sockets before it forks, so a failure to start is said once, by the parent; each child runs
  from there without importing anything again. Nothing before the fork starts a thread or an event loop.
- **Children never outlive the parent.** Each child asks Linux for SIGKILL when the parent dies (`PR_SET_PDEATHSIG`)
  and then checks that the parent is still the one that forked it (it may have died before the request). Killed
  with the parent, the webhook child releases the service's port at once, for the restart.
- **Signals.** The children are in process groups of their own, so a Ctrl-C at a terminal reaches the parent only;
  the parent passes SIGTERM and SIGINT on to both, which drain as a single-process `serve` does (a second Ctrl-C
  forces the exit).
- **A child that dies takes the service down.** The parent stops the other (SIGTERM: it drains) and exits 1 after
  logging which one died and how. Nothing is restarted inside: the supervisor outside (Kubernetes, systemd, compose)
  restarts the whole service and counts the restarts, where a restart inside would hide a crash loop.
- **Log lines stay whole.** Each child writes its JSON lines into a pipe; the parent writes only whole lines to its
  stdout, so lines of the two children never interleave, however long, whatever stdout is (a file, a pipe, a
  terminal, journald's socket).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import selectors
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

from receiver.cli.common import EXIT_FAILED, EXIT_INTERRUPTED

log = logging.getLogger("receiver.serve")

PR_SET_PDEATHSIG = 1
PIPE_BYTES = 1 << 20
"""Each child's log pipe holds this much (Linux's default, 64 KiB, is a few hundred access-log lines)."""
REAP_INTERVAL = 0.5
"""Seconds between checks for an ended child even without SIGCHLD (a child that ended before the handler was set)."""
STOPPED = {0, EXIT_INTERRUPTED, -signal.SIGTERM, -signal.SIGINT}
"""Exit statuses of a child that stopped because it was told to."""


@dataclass
class Child:
    name: str
    pid: int
    logs: int
    """The read end of the pipe its stdout goes to."""
    status: int | None = None
    """Its exit status once reaped (`os.waitstatus_to_exitcode`: -N for signal N)."""
    partial: bytearray = field(default_factory=bytearray)
    """Its last log line while incomplete."""


def run_children(
    children: dict[str, Callable[[], None]], inherited: Sequence[socket.socket], about: dict[str, object]
) -> int:
    """Fork one child per entry of `children` (name: what it runs), then supervise them; the service's exit status.
    `inherited`: the sockets the children serve on, closed in the parent once they are forked. `about`: fields of
    the line that names the children."""
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    forked: list[Child] = []
    for name, main in children.items():
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            _become_child(parent, write, [read, *(child.logs for child in forked)])
            os._exit(_child_status(main))
        os.close(write)
        with contextlib.suppress(OSError):  # only Linux can resize a pipe; elsewhere it keeps its size
            fcntl.fcntl(read, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        forked.append(Child(name, pid, read))
    for sock in inherited:
        sock.close()
    return Supervisor(forked).run(about)


def _become_child(parent: int, logs: int, others: list[int]) -> None:
    os.setpgid(0, 0)
    die_with_parent(parent)
    os.dup2(logs, sys.stdout.fileno())
    for fd in (logs, *others):
        os.close(fd)


def die_with_parent(parent: int) -> None:
    """Be sent SIGKILL when the process `parent` ends (Linux); end now if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(EXIT_FAILED)


def _child_status(main: Callable[[], None]) -> int:
    """Run a child's `main`; its exit status (what `sys.exit` said, 1 for an exception, which goes to stderr)."""
    try:
        main()
        status = 0
    except SystemExit as exit:
        status = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else EXIT_FAILED)
    except BaseException:
        traceback.print_exc()
        status = EXIT_FAILED
    logging.shutdown()  # the log lines still buffered
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    return status


class Supervisor:
    """The parent's loop: relay the children's log lines, pass signals on, reap them, decide the exit status."""

    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.stopping = False
        self.interrupted = False
        self.failed = False
        self.selector = selectors.DefaultSelector()

    def run(self, about: dict[str, object]) -> int:
        wake_read, wake_write = socket.socketpair()
        for end in (wake_read, wake_write):
            end.setblocking(False)
        previous = signal.set_wakeup_fd(wake_write.fileno())
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGCHLD, lambda sig, frame: None)  # only to wake the selector
        pids = {f"{child.name}_pid": child.pid for child in self.children}
        log.info("serving as two processes", extra={**pids, **about})
        self.selector.register(wake_read, selectors.EVENT_READ)
        for child in self.children:
            os.set_blocking(child.logs, False)
            self.selector.register(child.logs, selectors.EVENT_READ, child)
        try:
            while any(child.status is None for child in self.children):
                for key, _ in self.selector.select(REAP_INTERVAL):
                    if key.data is None:
                        with contextlib.suppress(BlockingIOError):
                            wake_read.recv(4096)
                    else:
                        self._relay(key.data)
                self._reap()
            for child in self.children:  # what they wrote before they ended
                while self._relay(child):
                    pass
        finally:
            signal.set_wakeup_fd(previous)
            wake_read.close()
            wake_write.close()
        return self._status()

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.interrupted = self.interrupted or sig == signal.SIGINT
        self.stopping = True
        self._tell(sig)

    def _tell(self, sig: int) -> None:
        for child in self.children:
            if child.status is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, sig)

    def _reap(self) -> None:
        for child in self.children:
            if child.status is not None:
                continue
            pid, status = os.waitpid(child.pid, os.WNOHANG)
            if pid == 0:
                continue
            child.status = os.waitstatus_to_exitcode(status)
            if not self.stopping:
                self.failed = self.stopping = True
                how = f"was killed by signal {-child.status}" if child.status < 0 else f"exited {child.status}"
                log.error(
                    f"the {child.name} process {how}: stopping the service",
                    extra={"pid": child.pid, "status": child.status},
                )
                self._tell(signal.SIGTERM)
            elif child.status not in STOPPED:
                log.error(f"the {child.name} process exited {child.status} while stopping", extra={"pid": child.pid})

    def _relay(self, child: Child) -> bool:
        """Write what `child` logged, whole lines only; False when there was nothing to read."""
        if child.logs < 0:
            return False
        try:
            data = os.read(child.logs, 1 << 16)
        except BlockingIOError:
            return False
        if not data:  # the child's end is closed: a last line without its newline still gets one
            self.selector.unregister(child.logs)
            os.close(child.logs)
            child.logs = -1
            if child.partial:
                _write_out(bytes(child.partial) + b"\n")
            return False
        child.partial += data
        cut = child.partial.rfind(b"\n") + 1
        if cut:
            _write_out(bytes(child.partial[:cut]))
            del child.partial[:cut]
        return True

    def _status(self) -> int:
        if self.failed or any(child.status not in STOPPED for child in self.children):
            return EXIT_FAILED
        return EXIT_INTERRUPTED if self.interrupted else 0


def _write_out(data: bytes) -> None:
    """Write to stdout whole (a pipe may take it in parts); nowhere to log to once stdout is gone."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(sys.stdout.fileno(), view) :]
    except OSError:
        pass
