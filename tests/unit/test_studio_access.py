"""Who may use the studio: no login-less studio beyond loopback, a password gate that shows
nothing before the password, uploads capped by Streamlit itself."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from storyteller.errors import InputError
from storyteller.studio.access import (PASSWORD_VARIABLE, check_exposure, login_mode,
                                       oidc_configured, password_matches, secrets_files)
from storyteller.studio.launch import streamlit_command
from tests.conftest import ROOT, run_cli

PASSWORD = "correct horse battery"


def test_beyond_loopback_needs_a_login():
    assert check_exposure("127.0.0.1", {}, oidc=False) == "open"
    with pytest.raises(InputError) as refused:
        check_exposure("0.0.0.0", {}, oidc=False)
    assert "--host 0.0.0.0" in str(refused.value) and PASSWORD_VARIABLE in str(refused.value)
    assert check_exposure("0.0.0.0", {PASSWORD_VARIABLE: PASSWORD}, oidc=False) == "password"
    assert check_exposure("192.168.1.5", {}, oidc=True) == "oidc"
    with pytest.raises(InputError, match="at least 8"):
        check_exposure("127.0.0.1", {PASSWORD_VARIABLE: "short"}, oidc=False)
    # A password set for a loopback studio is still asked for.
    assert login_mode({PASSWORD_VARIABLE: PASSWORD}, oidc=True) == "password"


def test_passwords_compare_exactly():
    assert password_matches(PASSWORD, PASSWORD)
    assert not password_matches(PASSWORD + " ", PASSWORD)
    assert not password_matches("", "")  # no password set: nothing matches


def test_an_oidc_login_counts_only_when_configured(tmp_path):
    home, cwd = tmp_path / "home", tmp_path / "project"
    files = secrets_files(cwd, home)
    assert not oidc_configured(files)
    (cwd / ".streamlit").mkdir(parents=True)
    files[1].write_text('[auth]\nredirect_uri = "https://studio.example/oauth2callback"\n'
                        'cookie_secret = "s3cret"\nclient_id = "x"\n')
    assert oidc_configured(files)
    files[1].write_text("[auth\nbroken")
    assert not oidc_configured(files)


def test_uploads_are_capped_by_streamlit_and_tls_is_passed_on(tmp_path):
    command = streamlit_command("127.0.0.1", 1, False, max_upload_mb=7,
                                ssl=(tmp_path / "c.pem", tmp_path / "k.pem"))
    options = dict(zip(command[5::2], command[6::2]))
    assert options["--server.maxUploadSize"] == "7"
    assert options["--server.sslCertFile"].endswith("c.pem")
    assert options["--server.sslKeyFile"].endswith("k.pem")


def test_the_command_refuses_an_open_studio_beyond_loopback(tmp_path, monkeypatch):
    monkeypatch.delenv(PASSWORD_VARIABLE, raising=False)
    result = run_cli("app", "--host", "0.0.0.0", "--library", str(tmp_path / "l.sqlite"))
    assert result.returncode == 1
    assert "only behind a login" in result.stderr and PASSWORD_VARIABLE in result.stderr
    half_tls = run_cli("app", "--ssl-cert", str(tmp_path / "c.pem"))
    assert half_tls.returncode == 1 and "--ssl-key" in half_tls.stderr


def test_the_studio_shows_nothing_before_the_password(monkeypatch, tmp_path):
    monkeypatch.setenv(PASSWORD_VARIABLE, PASSWORD)
    monkeypatch.setenv("STORYTELLER_LIBRARY", str(tmp_path / "library.sqlite"))
    monkeypatch.setenv("STORYTELLER_ENDPOINT", "http://127.0.0.1:9")
    at = AppTest.from_file(str(ROOT / "app" / "studio.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Studio password"]
    assert not at.text_area and not at.selectbox and not at.sidebar.button
    at.text_input[0].input("guess me please")
    at.button[0].click().run()
    assert any("not the studio password" in e.value for e in at.error)
    assert [t.label for t in at.text_input] == ["Studio password"]
    at.text_input[0].input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    assert "Studio password" not in [t.label for t in at.text_input]
    assert at.text_area or at.selectbox  # the Write page is there now
