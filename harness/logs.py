"""Library logs belong on stderr: stdout carries only what a command prints (one JSON document
with `--json`), so `harness run ... --json | jq` works with every backend.

vLLM logs INFO lines to stdout unless told otherwise, some libraries print from C code, and Ray or
engine processes inherit file descriptor 1; so while a `--json` command works, descriptor 1 itself
points at stderr and the JSON is written after it is restored.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator


def route_library_logs() -> None:
    """Send vLLM's log handler to stderr: through its environment variable before vLLM is imported,
    by re-pointing its handlers when it already is."""
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    for name in ("vllm", ""):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__):
                handler.setStream(sys.stderr)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Everything written to stdout inside the block (Python or C, this process or its children)
    goes to stderr instead."""
    route_library_logs()
    try:
        fd = sys.stdout.fileno()
        err_fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a captured stream (tests): Python-level only
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    try:
        os.dup2(err_fd, fd)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, fd)
        os.close(saved)
