"""`harness board`: the Streamlit board over the store, read-only, bound to 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from harness.commands.common import DbOption, err, exit_on_error, open_store
from harness.config import resolve_db_url
from harness.errors import ConfigError

LOOPBACK = "127.0.0.1"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def streamlit_command(port: int, host: str) -> list[str]:
    """The `streamlit run` line: headless, no usage statistics, no file watcher, our app file."""
    import dashboards

    app = Path(dashboards.__file__).resolve().parent / "app.py"
    return [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
        "--client.toolbarMode", "viewer",
    ]


def board(
    db: DbOption = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8501,
    host: Annotated[
        str, typer.Option(help="Address to bind. The default serves this machine only; anything else exposes the board (no login).")
    ] = LOOPBACK,
) -> None:
    """Explore runs, compare checkpoints and watch drift in a browser (Streamlit; the store is opened read-only)."""
    with exit_on_error():
        try:
            import streamlit  # noqa: F401
        except ImportError:
            raise ConfigError("the board needs its extra: pip install 'harness-eval[board]'") from None
        url = resolve_db_url(db)
        store = open_store(url, read_only=True)  # fail here, with exit 2, on a missing or unreadable store
        safe_url = store.safe_url
        store.close()
        if not _is_loopback(host):
            err.print(f"[yellow]warning:[/] serving on {host}: anyone who can reach this address can read the store")
        env = {**os.environ, "HARNESS_BOARD_DB": url}
        err.print(f"board on http://{host}:{port} (store {safe_url}, read-only); Ctrl-C stops it")
        proc = subprocess.Popen(streamlit_command(port, host), env=env)
        signal.signal(signal.SIGTERM, lambda *_: proc.terminate())  # stopping `harness board` stops Streamlit too
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            code = proc.wait()
        raise typer.Exit(code)
