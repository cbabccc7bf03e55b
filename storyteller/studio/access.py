"""Who may use the studio. The studio starts processes and writes files (the Train page), so,
like `storyteller serve` without an API key, it listens beyond loopback only behind a login:
a password the operator sets ($STORYTELLER_STUDIO_PASSWORD), or Streamlit's OpenID Connect
login where an `[auth]` section is configured in a Streamlit secrets file.

The checks are pure functions; `storyteller app` calls `check_exposure` before it starts, and
every page load calls the studio's gate (app/studio_ui.py), which uses `password_matches`."""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from storyteller.errors import InputError

PASSWORD_VARIABLE = "STORYTELLER_STUDIO_PASSWORD"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# A password shorter than this is refused outright: it would be guessed.
MIN_PASSWORD_CHARS = 8


def secrets_files(cwd: Path, home: Path) -> list[Path]:
    """Where Streamlit reads secrets from, in its order: the user's, then the project's."""
    return [home / ".streamlit" / "secrets.toml", cwd / ".streamlit" / "secrets.toml"]


def oidc_configured(files: Iterable[Path]) -> bool:
    """An `[auth]` section with a provider exists in one of Streamlit's secrets files."""
    for path in files:
        try:
            secrets = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
        auth = secrets.get("auth")
        if isinstance(auth, dict) and auth.get("redirect_uri") and auth.get("cookie_secret"):
            return True
    return False


def login_mode(env: Mapping[str, str], oidc: bool) -> str:
    """password | oidc | open. A password, once set, is asked for on every address."""
    if env.get(PASSWORD_VARIABLE, ""):
        return "password"
    return "oidc" if oidc else "open"


def check_exposure(host: str, env: Mapping[str, str], oidc: bool) -> str:
    """The login mode for a studio listening on `host`; raises where the studio would be open to
    other machines with no login, or the password is too short to protect anything."""
    password = env.get(PASSWORD_VARIABLE, "")
    if password and len(password) < MIN_PASSWORD_CHARS:
        raise InputError.at(f"${PASSWORD_VARIABLE}", f"the password has {len(password)} "
                            f"characters; at least {MIN_PASSWORD_CHARS} are needed",
                            "set a longer one (a passphrase of a few words)")
    mode = login_mode(env, oidc)
    if host not in LOOPBACK and mode == "open":
        raise InputError.at(f"--host {host}", "the studio starts training runs and writes files, "
                            "so it listens beyond this machine only behind a login",
                            f"set ${PASSWORD_VARIABLE} (and serve it over TLS: --ssl-cert and "
                            "--ssl-key), configure an [auth] section in .streamlit/secrets.toml "
                            "for an OpenID Connect login, or keep --host 127.0.0.1")
    return mode


def password_matches(given: str, expected: str) -> bool:
    """Constant-time comparison (of digests, so lengths do not leak either)."""
    if not expected:
        return False
    digest = lambda text: hashlib.sha256(text.encode("utf-8")).digest()  # noqa: E731
    return hmac.compare_digest(digest(given), digest(expected))
