"""Sign-in at a configured authority: the real azure-identity credentials (client secret,
certificate, workload identity) in a real ``certimport run`` process, against the emulator
served over TLS on loopback as both the Graph root and the sign-in authority.

The emulator's certificate comes from a throwaway CA (trustme), trusted the way the async
credentials' transport (aiohttp) trusts a private CA: OpenSSL's ``SSL_CERT_FILE``, read when
the process starts, which is why every run here is a subprocess. (``REQUESTS_CA_BUNDLE`` is
the variable of azure-identity's synchronous credentials, through requests; certimport uses
the async ones.)
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from helpers import ROOT, ThreadedEmulator, row, write_inventory

from importer.emulator import EmulatorConfig

SECRET = "client-secret-9d41c7e0"  # what the app registration's secret would be
TENANT = "contoso-tenant"
CLIENT = "11111111-2222-3333-4444-555555555555"


class TlsGraph:
    """A threaded emulator over TLS, its CA bundle on disk, and a way to run certimport."""

    def __init__(self, tmp_path: Path) -> None:
        self.ca = trustme.CA()
        self.bundle = tmp_path / "ca-bundle.pem"
        self.ca.cert_pem.write_to_path(str(self.bundle))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        config = EmulatorConfig(
            write_limit=0, read_limit=0, seed=5, client_secrets=frozenset({SECRET})
        )
        self.threaded = ThreadedEmulator(config, ssl_context=context)
        self.emulator = self.threaded.emulator
        self.root = self.emulator.root_url  # https://127.0.0.1:PORT
        self.tmp_path = tmp_path

    def env(self, **settings: str) -> dict[str, str]:
        """A clean environment for certimport against this emulator, plus ``settings``."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("CERTIMPORT_", "AZURE_"))}
        return {
            **base,
            "PYTHONPATH": str(ROOT),
            "SSL_CERT_FILE": str(self.bundle),
            "CERTIMPORT_STATE_DIR": str(self.tmp_path / "state"),
            "CERTIMPORT_RECONCILE_DELAY": "0",
            "CERTIMPORT_RATE_LIMIT": "0",
            "CERTIMPORT_MAX_ATTEMPTS": "4",
            **settings,
        }

    def run(self, env: dict[str, str], rows: int, *args: str) -> subprocess.Popen[str]:
        path = write_inventory(self.tmp_path / "inv.csv", [row(n) for n in range(rows)])
        return subprocess.Popen(
            [sys.executable, "-m", "importer", "run", str(path), "--out", str(self.out), *args],
            env=env,
            cwd=self.tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def out(self) -> Path:
        return self.tmp_path / "out"

    def grants(self) -> list[Any]:
        return self.threaded.call(lambda: list(self.emulator.grants))


@pytest.fixture
def tls_graph(isolated: Path) -> Iterator[TlsGraph]:
    graph = TlsGraph(isolated)
    try:
        yield graph
    finally:
        graph.threaded.close()


def finished(process: subprocess.Popen[str]) -> tuple[int, str]:
    stdout, stderr = process.communicate(timeout=180)
    return process.returncode, stdout + stderr


def reports_text(out: Path) -> str:
    return "".join(p.read_text() for p in out.iterdir()) if out.exists() else ""


def test_client_secret_run_signs_in_at_the_authority_host_and_renews_an_expiring_token(
    tls_graph: TlsGraph,
) -> None:
    graph = tls_graph
    graph.threaded.call(graph.emulator.configure, {"token_lifetime": 2, "latency": 0.2})
    env = graph.env(
        CERTIMPORT_BASE_URL=f"{graph.root}/beta",  # https on loopback: no allow_custom_host
        CERTIMPORT_AUTH_METHOD="client_secret",
        CERTIMPORT_CONCURRENCY="4",
        AZURE_AUTHORITY_HOST=graph.root,
        AZURE_TENANT_ID=TENANT,
        AZURE_CLIENT_ID=CLIENT,
        AZURE_CLIENT_SECRET=SECRET,
    )
    process = graph.run(env, 80)
    deadline = time.monotonic() + 60
    while not graph.grants() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    first_token_at = time.monotonic()
    # The first token lives 2 s, the next ones an hour: exactly one renewal is due mid-run.
    graph.threaded.call(graph.emulator.configure, {"token_lifetime": 3600})
    code, output = finished(process)
    ran_for = time.monotonic() - first_token_at
    assert code == 0, output
    assert ran_for > 2.5, "the run must outlive its first token"
    assert len(graph.threaded.records()) == 80
    grants = graph.grants()
    assert len(grants) == 2, "renewed once, for all four workers"
    host = graph.root.removeprefix("https://")
    for grant in grants:
        assert (grant.host, grant.tenant, grant.client_id) == (host, TENANT, CLIENT)
        assert (grant.credential, grant.scope) == ("client_secret", f"{graph.root}/.default")
    assert graph.threaded.stats()["token_requests"] == 2
    assert SECRET not in output + reports_text(graph.out)


def test_certificate_run_uses_authority_host_from_the_config_file(tls_graph: TlsGraph) -> None:
    graph = tls_graph
    rsa = trustme.KeyType.RSA  # azure-identity signs its assertion with RSA
    leaf = trustme.CA(key_type=rsa).issue_cert("certimport-app", key_type=rsa)
    pem = graph.tmp_path / "app.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(pem))
    config = graph.tmp_path / "certimport.toml"
    config.write_text(
        f'[graph]\nbase_url = "{graph.root}/beta"\ntenant_id = "{TENANT}"\n\n'
        f'[auth]\nmethod = "certificate"\nclient_id = "{CLIENT}"\n'
        f'certificate_path = "{pem}"\nauthority_host = "{graph.root}"\n'
    )
    env = graph.env(CERTIMPORT_CONFIG=str(config))
    code, output = finished(graph.run(env, 3))
    assert code == 0, output
    assert len(graph.threaded.records()) == 3
    (grant,) = graph.grants()
    assert (grant.credential, grant.tenant, grant.client_id) == ("certificate", TENANT, CLIENT)


def federated_token(path: Path) -> Path:
    """A service-account token as Kubernetes projects it (its signature is not checked)."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {
        "aud": "api://AzureADTokenExchange",
        "iss": "https://oidc.cluster.example",
        "sub": "system:serviceaccount:certimport:importer",
        "exp": int(time.time()) + 3600,
    }
    path.write_text(f"{part({'alg': 'RS256', 'kid': 'k1'})}.{part(claims)}.c2lnbmF0dXJl")
    return path


def test_workload_identity_in_a_custom_cloud(tls_graph: TlsGraph) -> None:
    graph = tls_graph
    config = graph.tmp_path / "custom.toml"
    config.write_text(
        f'[graph]\ncloud = "custom"\nbase_url = "{graph.root}/beta"\n'
        f'tenant_id = "{TENANT}"\nscope = "api://graph-emulator/.default"\n\n'
        f'[auth]\nmethod = "workload_identity"\nclient_id = "{CLIENT}"\n'
        f'authority_host = "{graph.root}"\n'
    )
    token_file = federated_token(graph.tmp_path / "sa-token")
    env = graph.env(CERTIMPORT_CONFIG=str(config), AZURE_FEDERATED_TOKEN_FILE=str(token_file))
    code, output = finished(graph.run(env, 2))
    assert code == 0, output
    (grant,) = graph.grants()
    assert (grant.credential, grant.scope) == ("federated", "api://graph-emulator/.default")
    assert len(graph.threaded.records()) == 2


def test_a_refused_secret_stops_the_run_with_entra_ids_reason_and_never_the_secret(
    tls_graph: TlsGraph,
) -> None:
    graph = tls_graph
    wrong = "not-the-secret-5b2e"
    env = graph.env(
        CERTIMPORT_BASE_URL=f"{graph.root}/beta",
        CERTIMPORT_AUTH_METHOD="client_secret",
        AZURE_AUTHORITY_HOST=graph.root,
        AZURE_TENANT_ID=TENANT,
        AZURE_CLIENT_ID=CLIENT,
        AZURE_CLIENT_SECRET=wrong,
    )
    code, output = finished(graph.run(env, 2))
    assert code == 3, output
    assert "AADSTS7000215" in output
    assert "Traceback" not in output
    assert wrong not in output + reports_text(graph.out)
    assert graph.threaded.records() == []
    assert graph.grants() == []


def test_without_the_ca_bundle_the_authority_is_not_trusted(tls_graph: TlsGraph) -> None:
    graph = tls_graph
    env = graph.env(
        CERTIMPORT_BASE_URL=f"{graph.root}/beta",
        CERTIMPORT_AUTH_METHOD="client_secret",
        AZURE_AUTHORITY_HOST=graph.root,
        AZURE_TENANT_ID=TENANT,
        AZURE_CLIENT_ID=CLIENT,
        AZURE_CLIENT_SECRET=SECRET,
    )
    del env["SSL_CERT_FILE"]
    code, output = finished(graph.run(env, 1))
    assert code == 3, output
    assert "Traceback" not in output
    assert "CERTIFICATE_VERIFY_FAILED" in output and "set SSL_CERT_FILE" in output
    assert graph.grants() == [] and graph.threaded.records() == []
