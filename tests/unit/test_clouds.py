"""The sign-in authority and custom clouds: ``[auth] authority_host`` (and AZURE_AUTHORITY_HOST),
``cloud = "custom"`` with its own Graph root, authority and scope, https loopback roots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from importer.config import load_settings
from importer.errors import ConfigError

pytestmark = pytest.mark.usefixtures("isolated")

STACK_HUB = """
[graph]
cloud = "custom"
base_url = "https://graph.local.azurestack.external/beta"
tenant_id = "adfs"
scope = "https://graph.local.azurestack.external/.default"

[auth]
method = "certificate"
authority_host = "https://adfs.local.azurestack.external"
"""


def problems_of(*args: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(*args, **kwargs)
    return list(caught.value.problems)


@pytest.mark.parametrize(
    ("env", "authority"),
    [
        ({}, "https://login.microsoftonline.com"),
        ({"CERTIMPORT_CLOUD": "usgov"}, "https://login.microsoftonline.us"),
        ({"AZURE_AUTHORITY_HOST": "https://127.0.0.1:8443"}, "https://127.0.0.1:8443"),
        ({"AZURE_AUTHORITY_HOST": "login.contoso.example"}, "https://login.contoso.example"),
        ({"CERTIMPORT_AUTHORITY_HOST": "https://[::1]:9443/"}, "https://[::1]:9443"),
        # certimport's own setting wins over azure-identity's variable
        (
            {
                "CERTIMPORT_AUTHORITY_HOST": "https://login.one.example",
                "AZURE_AUTHORITY_HOST": "https://login.two.example",
            },
            "https://login.one.example",
        ),
    ],
)
def test_the_authority_every_credential_is_given(env: dict[str, str], authority: str) -> None:
    assert load_settings(environ=env).authority == authority


def test_authority_host_in_the_file_and_the_environment_over_it(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[auth]\nauthority_host = "https://login.file.example"\n')
    assert load_settings(path, environ={}).authority == "https://login.file.example"
    env = {"CERTIMPORT_AUTHORITY_HOST": "https://login.env.example"}
    assert load_settings(path, environ=env).authority == "https://login.env.example"
    # the file is certimport's own setting: it wins over AZURE_AUTHORITY_HOST
    env = {"AZURE_AUTHORITY_HOST": "https://login.azure.example"}
    assert load_settings(path, environ=env).authority == "https://login.file.example"


def test_an_azure_stack_hub_style_custom_cloud(tmp_path: Path) -> None:
    path = tmp_path / "stack.toml"
    path.write_text(STACK_HUB)
    settings = load_settings(path, environ={})
    assert settings.cloud == "custom"
    assert settings.graph_root == "https://graph.local.azurestack.external"
    assert settings.authority == "https://adfs.local.azurestack.external"
    assert settings.scope == "https://graph.local.azurestack.external/.default"
    assert settings.tenant_id == "adfs"


def test_a_custom_cloud_scope_defaults_to_its_graph_root() -> None:
    env = {
        "CERTIMPORT_CLOUD": "custom",
        "CERTIMPORT_BASE_URL": "https://graph.contoso.example/beta",
        "AZURE_AUTHORITY_HOST": "https://login.contoso.example",
    }
    settings = load_settings(environ=env)
    assert settings.scope == "https://graph.contoso.example/.default"
    assert settings.authority == "https://login.contoso.example"


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1:8443/beta", "https://[::1]:8443/beta", "https://localhost/beta"]
)
def test_https_loopback_is_loopback_without_allow_custom_host(url: str) -> None:
    settings = load_settings(environ={"CERTIMPORT_BASE_URL": url})
    assert settings.base_url == url


CUSTOM = {"CERTIMPORT_CLOUD": "custom"}


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {**CUSTOM, "AZURE_AUTHORITY_HOST": "https://login.contoso.example"},
            'cloud "custom" needs base_url: its Graph root with the API version, '
            "e.g. https://graph.contoso.example/beta",
        ),
        (
            {**CUSTOM, "CERTIMPORT_BASE_URL": "https://graph.contoso.example/beta"},
            'cloud "custom" needs authority_host ([auth] authority_host, '
            "CERTIMPORT_AUTHORITY_HOST or AZURE_AUTHORITY_HOST): its sign-in authority, "
            "e.g. https://login.contoso.example",
        ),
        (
            {
                **CUSTOM,
                "CERTIMPORT_BASE_URL": "http://graph.contoso.example/beta",
                "AZURE_AUTHORITY_HOST": "https://login.contoso.example",
            },
            "base_url 'http://graph.contoso.example/beta': plain http is allowed only for "
            "loopback hosts (127.0.0.1, ::1, localhost); tokens are never sent unencrypted",
        ),
        (
            {"AZURE_AUTHORITY_HOST": "http://127.0.0.1:8080"},
            "AZURE_AUTHORITY_HOST 'http://127.0.0.1:8080': the sign-in authority must be https "
            "(azure-identity sends credentials only over TLS); for a local test authority "
            "serve TLS on loopback and trust its CA with SSL_CERT_FILE",
        ),
        (
            {"CERTIMPORT_AUTHORITY_HOST": "https://adfs.contoso.example/adfs"},
            "[auth] authority_host 'https://adfs.contoso.example/adfs': give the host only, "
            "without a path: the credential adds /<tenant_id>/oauth2/v2.0/token itself "
            '(tenant_id = "adfs" for ADFS)',
        ),
        (
            {"CERTIMPORT_AUTHORITY_HOST": "https://login.example:https"},
            "[auth] authority_host 'https://login.example:https': the port is not a number",
        ),
        (
            {"CERTIMPORT_AUTHORITY_HOST": "https://user@login.example"},
            "[auth] authority_host 'https://user@login.example': give it as https://host[:port]",
        ),
        (
            {"CERTIMPORT_TOKEN_SCOPE": "https://graph.microsoft.com/.default"},
            '[graph] scope (CERTIMPORT_TOKEN_SCOPE) is set only with cloud = "custom": '
            "the global cloud's scope is its Graph root's /.default",
        ),
        (
            {
                **CUSTOM,
                "CERTIMPORT_BASE_URL": "https://graph.contoso.example/beta",
                "AZURE_AUTHORITY_HOST": "https://login.contoso.example",
                "CERTIMPORT_TOKEN_SCOPE": "https://graph.contoso.example/User.Read",
            },
            "[graph] scope must be one app-only scope ending in /.default, e.g. "
            "https://graph.contoso.example/.default, got "
            "'https://graph.contoso.example/User.Read'",
        ),
    ],
)
def test_each_cloud_problem_names_the_setting_and_the_reason(
    env: dict[str, str], problem: str
) -> None:
    assert problems_of(environ=env) == [problem]


def test_a_bad_authority_is_one_line_from_the_cli_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import invoke, row, write_inventory

    path = write_inventory(tmp_path / "inv.csv", [row(1)])
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", "http://login.contoso.example")
    code, _, stderr = invoke("validate", str(path))
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert "AZURE_AUTHORITY_HOST 'http://login.contoso.example': the sign-in authority" in stderr
