"""Run a command on a pseudo-terminal (what a user's terminal is) and collect what it shows."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Sequence


class Terminal:
    """The user's side of the pty: type keys, see whether the program turned echo off."""

    def __init__(self, master: int) -> None:
        self.master = master

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    @property
    def echo(self) -> bool:
        # A password prompt turns echo off before it reads (and flushes what was typed before).
        return bool(termios.tcgetattr(self.master)[3] & termios.ECHO)


def run_in_pty(
    argv: Sequence[str],
    env: dict[str, str],
    columns: int = 120,
    rows: int = 40,
    timeout: float = 120,
    on_output: Callable[[bytes, subprocess.Popen[bytes], Terminal], None] | None = None,
) -> tuple[int, str]:
    """``argv`` with stdin, stdout and stderr on one pty of ``columns`` × ``rows``.

    Returns the exit code and everything written (ANSI sequences included).
    ``on_output(all_so_far, process, terminal)`` is called after each read and while the
    program is quiet, e.g. to send a signal or answer a prompt once it appeared.
    """
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen(
        list(argv), env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True
    )
    os.close(slave)
    terminal = Terminal(master)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                raise TimeoutError(b"".join(chunks).decode(errors="replace")[-2000:])
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            if on_output is not None:
                on_output(b"".join(chunks), proc, terminal)
    finally:
        os.close(master)
    code = proc.wait(timeout=timeout)
    return code, b"".join(chunks).decode(errors="replace")
