"""The emulator's one command line (``certimport emulator``, ``python -m importer.emulator``)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helpers import ROOT

import importer.emulator.server
from importer.emulator import COLLECTION_PATH, EmulatorConfig, main
from importer.emulator.command import build_config, emulator_command

FLAGS = (
    "--host",
    "--port",
    "--token",
    "--static-token",
    "--write-limit",
    "--write-window",
    "--read-limit",
    "--read-window",
    "--latency",
    "--fault-rate",
    "--seed",
    "--token-lifetime",
    "--identity-header",
    "--retry-after",
    "--tls-cert",
    "--tls-key",
)


def emulator_cli(*args: str) -> Result:
    return CliRunner().invoke(emulator_command, list(args), prog_name="certimport emulator")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[EmulatorConfig, str, int]]]:
    """Replace `serve` with one that records what it was given and returns at once."""
    calls: list[tuple[EmulatorConfig, str, int]] = []

    async def fake_serve(
        config: EmulatorConfig, host: str = "", port: int = 0, *, ssl_context: Any = None
    ) -> None:
        calls.append((config, host, port))

    monkeypatch.setattr(importer.emulator.server, "serve", fake_serve)
    yield calls


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.lower().startswith("error:")]


def test_help_shows_every_flag_and_an_example() -> None:
    result = emulator_cli("--help")
    assert result.exit_code == 0
    assert "Example" in result.output
    assert "certimport emulator --port 8080 --token dev-token" in result.output
    for flag in FLAGS:
        assert flag in result.output


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--fault-rate", "2"), "--fault-rate"),
        (("--latency", "-1"), "--latency"),
        (("--write-limit", "-5"), "--write-limit"),
        (("--read-limit", "-1"), "--read-limit"),
        (("--port", "-1"), "--port"),
        (("--port", "70000"), "--port"),
        (("--port", "eighty"), "--port"),
        (("--write-window", "0"), "--write-window"),
        (("--read-window", "-2"), "--read-window"),
        (("--token-lifetime", "0"), "--token-lifetime"),
        (("--seed", "x"), "--seed"),
        (("--host", "10.1.2.3"), "--host"),
        (("--host", "0.0.0.0"), "--host"),
        (("--host", "example.com"), "--host"),
        (("--token", ""), "static_tokens"),
        (("--identity-header", ""), "identity_header"),
        (("--retry-after", "later"), "--retry-after"),
        (("--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"), "--tls-cert"),
    ],
    ids=" ".join,
)
def test_bad_flags_are_usage_errors(
    args: tuple[str, ...], flag: str, served: list[tuple[EmulatorConfig, str, int]]
) -> None:
    result = emulator_cli(*args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = error_lines(result.output)
    assert len(lines) == 1, result.output
    assert flag in lines[0]
    assert not served


def test_a_public_host_is_refused_as_not_loopback() -> None:
    (line,) = error_lines(emulator_cli("--host", "10.1.2.3").output)
    assert "'10.1.2.3'" in line and "loopback" in line


def test_every_flag_reaches_the_config(served: list[tuple[EmulatorConfig, str, int]]) -> None:
    result = emulator_cli(
        *("--host", "localhost", "--port", "0", "--token", "a", "--static-token", "b"),
        *("--write-limit", "7", "--write-window", "1.5", "--read-limit", "0"),
        *("--read-window", "2.5", "--latency", "0.25", "--fault-rate", "0.5", "--seed", "3"),
        *("--token-lifetime", "5", "--identity-header", "shh", "--retry-after", "absent"),
    )
    assert result.exit_code == 0, result.output
    ((config, host, port),) = served
    assert (host, port) == ("localhost", 0)
    assert config == EmulatorConfig(
        write_limit=7,
        write_window=1.5,
        read_limit=0,
        read_window=2.5,
        latency=0.25,
        fault_rate=0.5,
        seed=3,
        static_tokens=frozenset({"a", "b"}),
        token_lifetime=5,
        identity_header="shh",
        retry_after="absent",
    )


def test_defaults_are_the_config_defaults(served: list[tuple[EmulatorConfig, str, int]]) -> None:
    assert emulator_cli().exit_code == 0
    ((config, host, port),) = served
    assert (config, host, port) == (EmulatorConfig(), "127.0.0.1", 8080)
    assert build_config() == EmulatorConfig()


def test_build_config_maps_token_lifetime() -> None:
    config = build_config(token_lifetime=5, tokens=["t"])
    assert config.token_lifetime == 5
    assert config.static_tokens == frozenset({"t"})
    with pytest.raises(ValueError, match="token_lifetime"):
        build_config(token_lifetime=-1)


def test_ctrl_c_ends_with_exit_0(monkeypatch: pytest.MonkeyPatch) -> None:
    async def interrupted(
        config: EmulatorConfig, host: str = "", port: int = 0, **tls: Any
    ) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(importer.emulator.server, "serve", interrupted)
    result = emulator_cli("--port", "0")
    assert result.exit_code == 0, result.output
    assert result.output == ""


def test_a_port_in_use_is_one_error_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = emulator_cli("--port", str(port))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.output.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


def test_a_bad_event_loop_choice_is_one_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTIMPORT_EVENT_LOOP", "nope")
    result = emulator_cli("--port", "0")
    assert result.exit_code == 2
    assert error_lines(result.output) == result.output.splitlines()
    assert len(result.output.splitlines()) == 1 and "CERTIMPORT_EVENT_LOOP" in result.output


def test_main_returns_the_exit_code_and_prints_the_error_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--fault-rate", "2"]) == 2
    assert len(error_lines(capsys.readouterr().err)) == 1
    assert main(["--help"]) == 0
    assert "Example" in capsys.readouterr().out


def test_importing_the_command_imports_no_server() -> None:
    probe = (
        "import sys, importer.emulator.command\n"
        "print([m for m in ('aiohttp', 'orjson', 'yarl', 'importer.emulator.server') "
        "if m in sys.modules])"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]", found.stdout


def _get(url: str, token: str | None = None, data: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=None if data is None else json.dumps(data).encode())
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, json.loads(answer.read())


def test_module_serves_until_sigint_then_exits_0() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "importer.emulator", "--port", "0", "--token", "t"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        found = re.match(r"emulator listening on (http://\S+)/beta ", line)
        assert found, line
        root = found.group(1)
        status, page = _get(f"{root}/beta{COLLECTION_PATH}", token="t")
        assert status == 200 and page["value"] == []
        _, config = _get(f"{root}/_config", data={})  # no change: answers the config
        assert config["static_tokens"] == ["t"] and config["token_lifetime"] == 3600
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_token_lifetime_reaches_the_running_emulator() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "importer.emulator", "--port", "0", "--token-lifetime", "5"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        found = re.match(r"emulator listening on (http://\S+)/beta ", process.stderr.readline())
        assert found
        _, config = _get(f"{found.group(1)}/_config", data={})
        assert config["token_lifetime"] == 5
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0


def test_tls_flags_go_together(
    tmp_path: Any, served: list[tuple[EmulatorConfig, str, int]]
) -> None:
    pem = tmp_path / "cert.pem"
    pem.write_text("not read")
    result = emulator_cli("--tls-cert", str(pem))
    assert result.exit_code == 2
    (line,) = error_lines(result.output)
    assert "--tls-cert and --tls-key go together" in line
    assert not served


def test_tls_emulator_serves_the_authority_with_the_flagged_token_lifetime(tmp_path: Any) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "importer.emulator", "--port", "0", "--token-lifetime", "7"),
            *("--retry-after", "fractional", "--tls-cert", str(cert), "--tls-key", str(key)),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        found = re.match(r"emulator listening on (https://\S+)/beta ", line)
        assert found, line
        root = found.group(1)
        assert f"authority host {root}" in line
        context = ssl.create_default_context()
        ca.configure_trust(context)
        form = "grant_type=client_credentials&client_id=app&client_secret=s&scope=api%2F.default"
        request = urllib.request.Request(
            f"{root}/contoso/oauth2/v2.0/token",
            data=form.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        with urllib.request.urlopen(request, timeout=10, context=context) as answer:
            token = json.loads(answer.read())
        assert token["token_type"] == "Bearer" and token["expires_in"] == 7
        with urllib.request.urlopen(f"{root}/_config", data=b"{}", context=context) as answer:
            config = json.loads(answer.read())
        assert (config["token_lifetime"], config["retry_after"]) == (7, "fractional")
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
