"""Logs of CLI runs: JSON lines, structured ids, --log-file, and no secret anywhere for any auth
method."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, STATIC_TOKEN, ThreadedEmulator, invoke, row, thumb, write_inventory


@pytest.fixture(autouse=True)
def _quiet_loggers():
    """Leave the importer/azure loggers as a CLI run left them: no handlers after the test."""
    yield
    for name in ("importer", "azure"):
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            handler.close()
        logger.handlers.clear()


def test_json_logs_parse_line_by_line_with_rows_throttling_and_retries(graph, tmp_path):
    rows = [row(n) for n in range(1, 6)] + [row(6, certificateThumbprint="bad")]
    path = write_inventory(tmp_path / "inv.csv", rows)
    graph.call(
        graph.emulator.script,
        [{"status": 429, "retry_after": "0.05", "thumbprint": thumb(2)}],
    )
    log_file = tmp_path / "logs" / "certimport.jsonl"
    log_file.parent.mkdir()
    args = ["run", str(path), "--out", str(tmp_path / "o"), "--log-format", "json"]
    code, _, stderr = invoke(*args, "--log-file", str(log_file), "-vv")
    assert code == 1, stderr
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    rows_logged = [e for e in entries if e.get("event") == "row"]
    assert sorted(e["line"] for e in rows_logged) == [2, 3, 4, 5, 6, 7]
    assert {e["status"] for e in rows_logged} == {"created", "rejected"}
    assert all(e["level"] == "DEBUG" for e in rows_logged)
    throttle = next(e for e in entries if e.get("event") == "throttled")
    assert throttle["level"] == "INFO" and throttle["http_status"] == 429
    assert throttle["client_request_id"] and throttle["request_id"]
    retry = next(e for e in entries if e.get("event") == "retry")
    assert retry["level"] == "INFO" and retry["error_code"] == "TooManyRequests"
    assert retry["request_id"] == throttle["request_id"]
    assert retry["client_request_id"] == throttle["client_request_id"]
    summary = next(e for e in entries if e.get("event") == "summary")
    assert summary["counts"] == {"created": 5, "rejected": 1} and summary["exit_code"] == 1
    problem = next(e for e in entries if e.get("event") == "message")
    assert problem["message"].startswith(f"{path}:7: column certificateThumbprint")
    # the console's log records are JSON lines too; human messages stay plain text
    console = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(e.get("event") == "throttled" for e in console)
    assert f"{path}:7: column certificateThumbprint" in stderr


def test_log_file_appends_and_holds_info_without_verbose(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    graph.call(graph.emulator.script, [{"status": 503, "retry_after": "0.01"}])
    log_file = tmp_path / "certimport.log"
    log_file.write_text("earlier line\n")
    for out in ("a", "b"):
        code, _, stderr = invoke(
            "run", str(path), "--out", str(tmp_path / out), "--log-file", str(log_file)
        )
        assert code == 0, stderr
        assert "INFO" not in stderr  # the console stays at WARNING
    text = log_file.read_text()
    assert text.startswith("earlier line\n")
    assert text.count("run finished with exit 0") == 2
    assert "POST answered 503" in text and "retrying after" in text
    assert " DEBUG " not in text


def test_unwritable_log_file_is_a_usage_error(graph, tmp_path):
    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    code, _, stderr = invoke("run", str(path), "--log-file", str(tmp_path / "no" / "x.log"))
    assert code == 2
    assert "--log-file" in stderr and "No such file or directory" in stderr
    assert graph.stats()["requests"] == 0


# -- no secret anywhere --------------------------------------------------------------------

# Runs the CLI with the sign-in authority of the default cloud moved to a loopback port that
# refuses connections, so app credentials fail without any traffic leaving the machine.
WRAPPER = (
    "import sys, importer.config as c; "
    "c.CLOUDS['global'] = (c.CLOUDS['global'][0], sys.argv.pop(1)); "
    "from importer.cli import main; main()"
)


def _certificate(path: Path, password: str) -> tuple[Path, str]:
    """A self-signed certificate with its encrypted key, and a line of the key's PEM body."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certimport-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    )
    path.write_bytes(pem + cert.public_bytes(serialization.Encoding.PEM))
    return path, pem.decode().splitlines()[2]


def _everything(out: Path, *texts: str) -> str:
    parts = list(texts)
    for file in sorted(out.rglob("*")):
        if file.is_file():
            parts.append(file.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(parts)


def test_no_secret_in_any_output_for_any_auth_method(
    graph: ThreadedEmulator, tmp_path, monkeypatch
):
    """Every auth method that can run here, text and JSON logs at -vv: the secret is nowhere.

    static, managed_identity and default (managed identity through the emulator's token
    endpoint) run to the end. client_secret, certificate and workload_identity reach no real
    authority: theirs is a loopback port that refuses connections, so their credential fails
    after azure-identity's own retries (about 5 s: those runs go in parallel subprocesses).
    """
    path = write_inventory(tmp_path / "inv.csv", [row(1), row(2, certificateKeyUsages="x")])
    blocker = socket.socket()  # bound, never listening: connections to it are refused
    blocker.bind(("127.0.0.1", 0))
    authority = f"127.0.0.1:{blocker.getsockname()[1]}"
    secret = "leak-canary-5b1f0c7e9a"
    cert, key_line = _certificate(tmp_path / "app.pem", secret)
    federated = tmp_path / "federated-token"
    federated.write_text(f"federated-{secret}")
    base_env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().endswith("_PROXY") and not k.startswith(("AZURE_", "IDENTITY_"))
    }
    base_env.update(
        PYTHONPATH=str(ROOT),
        NO_PROXY="*",
        AZURE_TENANT_ID="00000000-0000-0000-0000-000000000001",
        AZURE_CLIENT_ID="00000000-0000-0000-0000-000000000002",
    )
    base_env.pop("CERTIMPORT_ACCESS_TOKEN", None)
    apps = {
        "client_secret": ({"AZURE_CLIENT_SECRET": secret}, [secret]),
        "certificate": (
            {
                "AZURE_CLIENT_CERTIFICATE_PATH": str(cert),
                "AZURE_CLIENT_CERTIFICATE_PASSWORD": secret,
            },
            [secret, key_line],
        ),
        "workload_identity": ({"AZURE_FEDERATED_TOKEN_FILE": str(federated)}, [secret]),
    }
    procs = []
    for method, (extra, secrets) in apps.items():
        for log_format in ("text", "json"):
            out = tmp_path / f"{method}-{log_format}"
            out.mkdir()
            env = {**base_env, **extra, "CERTIMPORT_AUTH_METHOD": method}
            env["CERTIMPORT_STATE_DIR"] = str(out / "state")  # one journal lock each
            cmd = [sys.executable, "-c", WRAPPER, authority, "run", str(path), "-vv"]
            cmd += ["--out", str(out / "reports"), "--log-format", log_format]
            cmd += ["--log-file", str(out / "log"), "--metrics-file", str(out / "m.prom")]
            proc = subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            procs.append((method, log_format, out, secrets, proc))
    try:
        identity_header = f"identity-{secret}"
        graph.call(graph.emulator.configure, {"identity_header": identity_header})
        monkeypatch.setenv("IDENTITY_ENDPOINT", graph.emulator.identity_endpoint)
        monkeypatch.setenv("IDENTITY_HEADER", identity_header)
        for method in ("static", "managed_identity", "default"):
            monkeypatch.setenv("CERTIMPORT_AUTH_METHOD", method)
            if method != "static":
                monkeypatch.delenv("CERTIMPORT_ACCESS_TOKEN", raising=False)
            for log_format in ("text", "json"):
                out = tmp_path / f"{method}-{log_format}"
                out.mkdir()
                reports, log, metrics = out / "reports", out / "log", out / "m.prom"
                code, stdout, stderr = invoke(
                    *("run", str(path), "-vv", "--out", str(reports), "--log-format", log_format),
                    *("--log-file", str(log), "--metrics-file", str(metrics)),
                )
                assert code == 1, (method, stderr)
                tokens = graph.call(lambda: list(graph.emulator._tokens))
                everything = _everything(out, stdout, stderr)
                assert "created" in everything
                for known in [STATIC_TOKEN, identity_header, *tokens]:
                    assert known not in everything, (method, log_format)
        for method, log_format, out, secrets, proc in procs:
            stdout, stderr = proc.communicate(timeout=90)
            assert proc.returncode == 3, (method, stderr)
            assert f"auth method '{method}'" in stderr
            everything = _everything(out, stdout, stderr)
            assert re.search(r"certimport_last_run_exit_code\{target=\"[^\"]*\"\} 3", everything)
            for known in secrets:
                assert known not in everything, (method, log_format)
    finally:
        blocker.close()
        for *_, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
