"""`storyteller app`: what it starts, and the mistakes it names before starting anything."""

from __future__ import annotations

import socket

from storyteller.studio.launch import ENTRY, streamlit_command
from tests.conftest import run_cli


def test_the_studio_is_served_on_the_given_address_only():
    command = streamlit_command("127.0.0.1", 8600, open_browser=False)
    assert command[1:5] == ["-m", "streamlit", "run", str(ENTRY)] and ENTRY.is_file()
    options = dict(zip(command[5::2], command[6::2]))
    assert options["--server.address"] == "127.0.0.1" and options["--server.port"] == "8600"
    assert options["--server.headless"] == "true"
    assert options["--browser.gatherUsageStats"] == "false"
    assert dict(zip(*[iter(streamlit_command("0.0.0.0", 1, True)[5:])] * 2))[
        "--browser.serverAddress"] == "localhost"


def test_mistakes_are_named_before_anything_starts(tmp_path):
    no_study = run_cli("app", "--ratings", str(tmp_path))
    assert no_study.returncode == 1 and "holds no key.json" in no_study.stderr
    bad_config = tmp_path / "studio.yaml"
    bad_config.write_text("endpont: http://x\n")
    result = run_cli("app", "--config", str(bad_config))
    assert result.returncode == 1 and "studio.yaml:1" in result.stderr and "endpont" in result.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli("app", "--port", str(port), "--library", str(tmp_path / "l.sqlite"))
    assert busy.returncode == 1 and "cannot listen there" in busy.stderr


def test_help_teaches():
    result = run_cli("app", "--help")
    assert result.returncode == 0
    for words in ("--endpoint", "--ratings", "STORYTELLER_API_KEY", "Examples"):
        assert words in result.stdout
