"""How the writing studio (app/studio.py) is started with Streamlit: its entry page and the
command line that serves it."""

from __future__ import annotations

import sys
from pathlib import Path

APP_DIR = Path(__file__).resolve().parents[2] / "app"
ENTRY = APP_DIR / "studio.py"


def streamlit_command(host: str, port: int, open_browser: bool, max_upload_mb: int = 50,
                      ssl: tuple[Path, Path] | None = None) -> list[str]:
    """The command line that serves the studio: on `host` only, without usage statistics,
    headless unless a browser should open, refusing uploads above `max_upload_mb` (Streamlit
    checks the size before a page sees the file), over TLS with `ssl` = (certificate, key)."""
    tls = ["--server.sslCertFile", str(ssl[0]), "--server.sslKeyFile", str(ssl[1])] if ssl else []
    return [sys.executable, "-m", "streamlit", "run", str(ENTRY),
            "--server.address", host, "--server.port", str(port),
            "--server.headless", "false" if open_browser else "true",
            "--browser.gatherUsageStats", "false",
            "--browser.serverAddress", host if host not in ("0.0.0.0", "::") else "localhost",
            "--server.fileWatcherType", "none",
            "--client.toolbarMode", "minimal",
            "--server.maxUploadSize", str(max_upload_mb), *tls]
