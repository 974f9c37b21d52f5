"""load_settings: defaults, precedence, every problem at once, clouds, secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import CONFIG_SECRET, SECRET_REFUSED

from importer.config import Settings, load_settings
from importer.errors import ConfigError

COLLECTION = "/deviceManagement/deviceConfigurationsAllManagedDeviceCertificateStates"


# No stray config/certimport.toml; every test passes its own environment.
pytestmark = pytest.mark.usefixtures("isolated")


def toml(tmp_path: Path, text: str, name: str = "certimport.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(*args: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(*args, **kwargs)
    assert str(caught.value).startswith("invalid configuration:\n")
    return list(caught.value.problems)


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert settings == Settings(base_url="https://graph.microsoft.com/beta")
    assert (settings.cloud, settings.auth_method, settings.timezone) == ("global", "default", "UTC")
    assert (settings.concurrency, settings.max_attempts, settings.chunk_size) == (4, 8, 50_000)
    assert (settings.retry_deadline, settings.request_timeout) == (600.0, 60.0)
    assert settings.access_token is None
    assert settings.allow_custom_host is False
    assert settings.out_dir == ""


FULL_TOML = """
[graph]
cloud = "usgov"
tenant_id = "contoso.onmicrosoft.com"

[auth]
method = "client_secret"
client_id = "11111111-2222-3333-4444-555555555555"

[run]
concurrency = 8
max_attempts = 5
retry_deadline = 120.5
request_timeout = 30
chunk_size = 1000
out_dir = "reports"

[input]
timezone = "Europe/Berlin"
"""


def test_every_toml_key_is_read(tmp_path: Path) -> None:
    settings = load_settings(toml(tmp_path, FULL_TOML), environ={})
    assert settings == Settings(
        cloud="usgov",
        base_url="https://graph.microsoft.us/beta",
        tenant_id="contoso.onmicrosoft.com",
        auth_method="client_secret",
        client_id="11111111-2222-3333-4444-555555555555",
        concurrency=8,
        max_attempts=5,
        retry_deadline=120.5,
        request_timeout=30.0,
        chunk_size=1000,
        out_dir="reports",
        timezone="Europe/Berlin",
    )


def test_every_setting_has_an_environment_variable() -> None:
    env = {
        "CERTIMPORT_CLOUD": "dod",
        "CERTIMPORT_TENANT_ID": "tenant",
        "CERTIMPORT_AUTH_METHOD": "static",
        "CERTIMPORT_ACCESS_TOKEN": CONFIG_SECRET,
        "CERTIMPORT_CLIENT_ID": "app",
        "CERTIMPORT_CERTIFICATE_PATH": "/etc/cert.pem",
        "CERTIMPORT_CONCURRENCY": "16",
        "CERTIMPORT_MAX_ATTEMPTS": "3",
        "CERTIMPORT_RETRY_DEADLINE": "9.5",
        "CERTIMPORT_REQUEST_TIMEOUT": "7",
        "CERTIMPORT_CHUNK_SIZE": "100",
        "CERTIMPORT_OUT_DIR": "out/x",
        "CERTIMPORT_TIMEZONE": "Asia/Tokyo",
    }
    settings = load_settings(environ=env)
    assert settings.access_token is not None
    assert settings.access_token.reveal() == CONFIG_SECRET
    assert settings == Settings(
        cloud="dod",
        base_url="https://dod-graph.microsoft.us/beta",
        tenant_id="tenant",
        auth_method="static",
        client_id="app",
        certificate_path="/etc/cert.pem",
        access_token=settings.access_token,
        concurrency=16,
        max_attempts=3,
        retry_deadline=9.5,
        request_timeout=7.0,
        chunk_size=100,
        out_dir="out/x",
        timezone="Asia/Tokyo",
    )


@pytest.mark.parametrize(
    ("toml_text", "env", "overrides", "expected"),
    [
        ("[run]\nconcurrency = 8\n", {}, {}, 8),
        ("[run]\nconcurrency = 8\n", {"CERTIMPORT_CONCURRENCY": "16"}, {}, 16),
        ("[run]\nconcurrency = 8\n", {"CERTIMPORT_CONCURRENCY": "16"}, {"concurrency": 32}, 32),
        ("", {"CERTIMPORT_CONCURRENCY": "16"}, {"concurrency": 32}, 32),
        ("[run]\nconcurrency = 8\n", {}, {"concurrency": 32}, 32),
        ("[run]\nconcurrency = 8\n", {"CERTIMPORT_CONCURRENCY": "16"}, {"concurrency": None}, 16),
        ("[run]\nconcurrency = 8\n", {"CERTIMPORT_CONCURRENCY": ""}, {}, 8),
        ("", {}, {"concurrency": None}, 4),
    ],
)
def test_precedence_toml_then_environment_then_flags(
    tmp_path: Path, toml_text: str, env: dict[str, str], overrides: dict[str, Any], expected: int
) -> None:
    path = toml(tmp_path, toml_text)
    assert load_settings(path, environ=env, overrides=overrides).concurrency == expected


def test_precedence_holds_for_every_kind_of_value(tmp_path: Path) -> None:
    path = toml(tmp_path, FULL_TOML)
    env = {"CERTIMPORT_TIMEZONE": "UTC", "CERTIMPORT_CLOUD": "china"}
    settings = load_settings(path, environ=env, overrides={"timezone": "Asia/Tokyo"})
    assert settings.timezone == "Asia/Tokyo"
    assert settings.cloud == "china"
    assert settings.base_url == "https://microsoftgraph.chinacloudapi.cn/beta"
    assert settings.concurrency == 8  # from the file, untouched by env and flags


def test_config_file_from_environment_then_default_path(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    toml(tmp_path / "config", "[run]\nconcurrency = 2\n")
    named = toml(tmp_path, "[run]\nconcurrency = 3\n", "other.toml")
    explicit = toml(tmp_path, "[run]\nconcurrency = 5\n", "explicit.toml")
    assert load_settings(environ={}).concurrency == 2
    assert load_settings(environ={"CERTIMPORT_CONFIG": str(named)}).concurrency == 3
    assert load_settings(explicit, environ={"CERTIMPORT_CONFIG": str(named)}).concurrency == 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("true", True), ("YES", True), ("on", True), (" True ", True),
     ("0", False), ("false", False), ("no", False), ("Off", False)],
)  # fmt: skip
def test_boolean_environment_values(text: str, expected: bool) -> None:
    settings = load_settings(environ={"CERTIMPORT_ALLOW_CUSTOM_HOST": text})
    assert settings.allow_custom_host is expected


# --- problems ------------------------------------------------------------------------------


def test_every_problem_is_reported_together(tmp_path: Path) -> None:
    path = toml(
        tmp_path,
        """
[graph]
cloud = "mars"
colour = "blue"

[auth]
method = "static"

[run]
concurrency = "many"
chunk_size = 5

[input]
timezone = "Mars/Olympus_Mons"
""",
    )
    env = {"CERTIMPORT_MAX_ATTEMPTS": "lots", "CERTIMPORT_BASE_URL": "http://graph.example/beta"}
    assert problems_of(path, environ=env) == [
        f"{path}: unknown setting [graph] colour; known keys in [graph]: allow_custom_host, "
        "base_url, cloud, scope, tenant_id",
        f"{path}: [run] concurrency must be a whole number, got 'many'",
        "environment: CERTIMPORT_MAX_ATTEMPTS must be a whole number, got 'lots'",
        "cloud must be one of global, usgov, dod, china, custom, got 'mars'",
        "base_url 'http://graph.example/beta': plain http is allowed only for loopback hosts "
        "(127.0.0.1, ::1, localhost); tokens are never sent unencrypted",
        "auth method 'static' needs a token in CERTIMPORT_ACCESS_TOKEN",
        "chunk_size must be between 100 and 10000000, got 5",
        "timezone must be an IANA time zone name such as UTC or Europe/Berlin, "
        "got 'Mars/Olympus_Mons'",
    ]


TZ_PROBLEM = "timezone must be an IANA time zone name such as UTC or Europe/Berlin, got {!r}"
METHODS = (
    "default, client_secret, certificate, managed_identity, workload_identity, azure_cli, static"
)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"CERTIMPORT_CLOUD": "azure"},
            "cloud must be one of global, usgov, dod, china, custom, got 'azure'",
        ),
        (
            {"CERTIMPORT_CLOUD": "Global"},
            "cloud must be one of global, usgov, dod, china, custom, got 'Global'",
        ),
        ({"CERTIMPORT_TIMEZONE": "CEST"}, TZ_PROBLEM.format("CEST")),
        ({"CERTIMPORT_TIMEZONE": "../../etc/passwd"}, TZ_PROBLEM.format("../../etc/passwd")),
        (
            {"CERTIMPORT_AUTH_METHOD": "password"},
            f"auth method must be one of {METHODS}, got 'password'",
        ),
        (
            {"CERTIMPORT_AUTH_METHOD": "static"},
            "auth method 'static' needs a token in CERTIMPORT_ACCESS_TOKEN",
        ),
        ({"CERTIMPORT_CONCURRENCY": "0"}, "concurrency must be between 1 and 1024, got 0"),
        (
            {"CERTIMPORT_CONCURRENCY": "4.5"},
            "environment: CERTIMPORT_CONCURRENCY must be a whole number, got '4.5'",
        ),
        ({"CERTIMPORT_MAX_ATTEMPTS": "1001"}, "max_attempts must be between 1 and 1000, got 1001"),
        ({"CERTIMPORT_CHUNK_SIZE": "99"}, "chunk_size must be between 100 and 10000000, got 99"),
        (
            {"CERTIMPORT_RETRY_DEADLINE": "0"},
            "retry_deadline must be a positive number of seconds, got 0.0",
        ),
        (
            {"CERTIMPORT_REQUEST_TIMEOUT": "nan"},
            "environment: CERTIMPORT_REQUEST_TIMEOUT must be a finite number, got 'nan'",
        ),
        (
            {"CERTIMPORT_RETRY_DEADLINE": "inf"},
            "environment: CERTIMPORT_RETRY_DEADLINE must be a finite number, got 'inf'",
        ),
        (
            {"CERTIMPORT_CONCURRENCY": "nan"},
            "environment: CERTIMPORT_CONCURRENCY must be a whole number, got 'nan'",
        ),
        (
            {"CERTIMPORT_CONCURRENCY": "1e3"},
            "environment: CERTIMPORT_CONCURRENCY must be a whole number, got '1e3'",
        ),
        (
            {"CERTIMPORT_ALLOW_CUSTOM_HOST": "maybe"},
            "environment: CERTIMPORT_ALLOW_CUSTOM_HOST must be true or false, got 'maybe'",
        ),
    ],
)
def test_each_problem(env: dict[str, str], problem: str) -> None:
    assert problems_of(environ=env) == [problem]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[graph]\nbogus = 1\n", "unknown setting [graph] bogus; known keys in [graph]: "
         "allow_custom_host, base_url, cloud, scope, tenant_id"),
        ("[auth]\nauth_method = 'static'\n", "unknown setting [auth] auth_method; known keys in "
         "[auth]: authority_host, certificate_path, client_id, method"),
        ("[extra]\nx = 1\n", "unknown setting [extra] x"),
        ("concurrency = 4\n", "top-level key 'concurrency' must be a [section]"),
        ("[run]\nconcurrency = true\n", "[run] concurrency must be a whole number, got True"),
        ("[run]\nconcurrency = 2.5\n", "[run] concurrency must be a whole number, got 2.5"),
        ("[run]\nconcurrency = 1e400\n", "[run] concurrency must be a whole number, got inf"),
        ("[run]\nconcurrency = nan\n", "[run] concurrency must be a whole number, got nan"),
        ("[run]\nchunk_size = '1_000'\n", "[run] chunk_size must be a whole number, got '1_000'"),
        ("[run]\nrequest_timeout = inf\n", "[run] request_timeout must be a finite number, "
         "got inf"),
        ("[journal]\nshrink_guard = -nan\n", "[journal] shrink_guard must be a finite number, "
         "got nan"),
        ("[run]\nretry_deadline = 'soon'\n", "[run] retry_deadline must be a number, got 'soon'"),
        ("[graph]\nallow_custom_host = 'perhaps'\n", "[graph] allow_custom_host must be true or "
         "false, got 'perhaps'"),
        ("[graph]\ncloud = 3\n", "[graph] cloud must be a string, got 3"),
        ("[run\n", "not valid TOML: "),
    ],
)  # fmt: skip
def test_each_toml_problem_names_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = toml(tmp_path, text)
    [found] = problems_of(path, environ={})
    assert found.startswith(f"{path}: {problem}")


def test_missing_config_file_is_a_problem(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert problems_of(missing, environ={}) == [f"{missing}: config file not found"]
    assert problems_of(environ={"CERTIMPORT_CONFIG": str(missing)}) == [
        f"{missing}: config file not found"
    ]


# --- where tokens may go -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "base_url"),
    [
        ({"CERTIMPORT_BASE_URL": "http://127.0.0.1:8080/beta"}, "http://127.0.0.1:8080/beta"),
        ({"CERTIMPORT_BASE_URL": "http://127.5.6.7/beta/"}, "http://127.5.6.7/beta"),
        ({"CERTIMPORT_BASE_URL": "http://[::1]:9000/beta"}, "http://[::1]:9000/beta"),
        ({"CERTIMPORT_BASE_URL": "http://localhost:9000/beta"}, "http://localhost:9000/beta"),
        ({"CERTIMPORT_BASE_URL": "https://graph.microsoft.com/beta"},
         "https://graph.microsoft.com/beta"),
        ({"CERTIMPORT_BASE_URL": "https://GRAPH.microsoft.com/beta"},
         "https://GRAPH.microsoft.com/beta"),
        ({"CERTIMPORT_BASE_URL": "https://graph.microsoft.us/beta"},
         "https://graph.microsoft.us/beta"),
        ({"CERTIMPORT_BASE_URL": "https://proxy.contoso.com/graph/beta",
          "CERTIMPORT_ALLOW_CUSTOM_HOST": "true"}, "https://proxy.contoso.com/graph/beta"),
    ],
)  # fmt: skip
def test_accepted_base_urls(env: dict[str, str], base_url: str) -> None:
    settings = load_settings(environ=env)
    assert settings.base_url == base_url
    assert settings.collection_url == base_url + COLLECTION


NOT_LOOPBACK = (
    "base_url {!r}: plain http is allowed only for loopback hosts (127.0.0.1, ::1, localhost); "
    "tokens are never sent unencrypted"
)
NOT_GRAPH = (
    "base_url host {!r} is not a Microsoft Graph host; set allow_custom_host = true "
    '(or CERTIMPORT_ALLOW_CUSTOM_HOST=1), or cloud = "custom", if you really mean to send '
    "tokens there"
)
NO_BETA = "base_url must end with /beta (the API version), got {!r}"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://10.0.0.5/beta", NOT_LOOPBACK.format("http://10.0.0.5/beta")),
        ("http://graph.microsoft.com/beta", NOT_LOOPBACK.format("http://graph.microsoft.com/beta")),
        ("http://localhost.evil.example/beta",
         NOT_LOOPBACK.format("http://localhost.evil.example/beta")),
        ("https://evil.example/beta", NOT_GRAPH.format("evil.example")),
        ("https://graph.microsoft.com.evil.example/beta",
         NOT_GRAPH.format("graph.microsoft.com.evil.example")),
        ("https://graph.microsoft.com@evil.example/beta", NOT_GRAPH.format("evil.example")),
        ("https://evil.example/graph.microsoft.com/beta", NOT_GRAPH.format("evil.example")),
        ("https://graph.microsoft.com/v1.0", NO_BETA.format("https://graph.microsoft.com/v1.0")),
        ("https://graph.microsoft.com", NO_BETA.format("https://graph.microsoft.com")),
        ("http://127.0.0.1:8080", NO_BETA.format("http://127.0.0.1:8080")),
        ("ftp://graph.microsoft.com/beta",
         "base_url must be an http(s) URL, got 'ftp://graph.microsoft.com/beta'"),
        ("graph.microsoft.com/beta", "base_url must be an http(s) URL, got "
         "'graph.microsoft.com/beta'"),
    ],
)  # fmt: skip
def test_refused_base_urls(url: str, problem: str) -> None:
    assert problems_of(environ={"CERTIMPORT_BASE_URL": url}) == [problem]


@pytest.mark.parametrize(
    ("cloud", "root", "authority"),
    [
        ("global", "https://graph.microsoft.com", "https://login.microsoftonline.com"),
        ("usgov", "https://graph.microsoft.us", "https://login.microsoftonline.us"),
        ("dod", "https://dod-graph.microsoft.us", "https://login.microsoftonline.us"),
        ("china", "https://microsoftgraph.chinacloudapi.cn", "https://login.chinacloudapi.cn"),
    ],
)
def test_clouds_map_to_graph_root_authority_and_scope(
    cloud: str, root: str, authority: str
) -> None:
    settings = load_settings(environ={"CERTIMPORT_CLOUD": cloud})
    assert settings.base_url == f"{root}/beta"
    assert settings.graph_root == root
    assert settings.authority == authority
    assert settings.scope == f"{root}/.default"
    assert settings.collection_url == f"{root}/beta{COLLECTION}"


def test_scope_follows_a_base_url_override() -> None:
    env = {"CERTIMPORT_BASE_URL": "http://127.0.0.1:8080/beta"}
    assert load_settings(environ=env).scope == "http://127.0.0.1:8080/.default"


# --- secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["environment", "override"])
def test_token_never_shows(source: str) -> None:
    env = {"CERTIMPORT_AUTH_METHOD": "static"}
    overrides: dict[str, Any] = {}
    if source == "environment":
        env["CERTIMPORT_ACCESS_TOKEN"] = CONFIG_SECRET
    else:
        overrides["access_token"] = CONFIG_SECRET
    settings = load_settings(environ=env, overrides=overrides)
    assert settings.access_token is not None
    assert settings.access_token.reveal() == CONFIG_SECRET
    shown = [
        repr(settings),
        str(settings),
        f"{settings}",
        repr(settings.access_token),
        str(settings.access_token),
        f"{settings.access_token}",
    ]
    for text in shown:
        assert CONFIG_SECRET not in text
    assert str(settings.access_token) == "Secret('[secure]')"
    assert "access_token" not in repr(settings)


def test_token_is_not_in_config_errors() -> None:
    env = {"CERTIMPORT_ACCESS_TOKEN": CONFIG_SECRET, "CERTIMPORT_CLOUD": "mars"}
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=env)
    assert CONFIG_SECRET not in str(caught.value)
    assert CONFIG_SECRET not in repr(caught.value)


@pytest.mark.parametrize(
    ("section", "key", "variable"),
    [
        ("auth", "access_token", "CERTIMPORT_ACCESS_TOKEN"),
        ("auth", "client_secret", "AZURE_CLIENT_SECRET"),
        ("auth", "certificate_password", "AZURE_CLIENT_CERTIFICATE_PASSWORD"),
        ("auth", "client_certificate_password", "AZURE_CLIENT_CERTIFICATE_PASSWORD"),
        ("auth", "password", "AZURE_CLIENT_CERTIFICATE_PASSWORD"),
        ("graph", "access_token", "CERTIMPORT_ACCESS_TOKEN"),
        ("run", "Client_Secret", "AZURE_CLIENT_SECRET"),
        ("columns", "password", "AZURE_CLIENT_CERTIFICATE_PASSWORD"),
    ],
)
def test_a_secret_in_the_config_file_is_refused_without_showing_it(
    tmp_path: Path, section: str, key: str, variable: str
) -> None:
    path = toml(tmp_path, f'[{section}]\n{key} = "{CONFIG_SECRET}"\n')
    env = {"CERTIMPORT_ACCESS_TOKEN": "from-the-environment"}
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=env)
    assert list(caught.value.problems) == [
        SECRET_REFUSED.format(path=path, where=f"[{section}] {key}", variable=variable)
    ]
    assert CONFIG_SECRET not in str(caught.value)
    assert CONFIG_SECRET not in repr(caught.value)


def test_a_secret_at_the_top_of_the_file_is_refused_too(tmp_path: Path) -> None:
    path = toml(tmp_path, f'access_token = "{CONFIG_SECRET}"\n[run]\nconcurrency = 0\n')
    problems = problems_of(path, environ={})
    assert problems == [
        SECRET_REFUSED.format(path=path, where="access_token", variable="CERTIMPORT_ACCESS_TOKEN"),
        "concurrency must be between 1 and 1024, got 0",
    ]
    assert not any(CONFIG_SECRET in p for p in problems)


def test_the_token_from_the_environment_still_works_beside_a_config_file(tmp_path: Path) -> None:
    path = toml(tmp_path, '[auth]\nmethod = "static"\n')
    settings = load_settings(path, environ={"CERTIMPORT_ACCESS_TOKEN": CONFIG_SECRET})
    assert settings.auth_method == "static"
    assert settings.access_token is not None
    assert settings.access_token.reveal() == CONFIG_SECRET


# --- the file itself and its numbers -------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"[run]\nconcurrency = 8 # \xe9t\xe9\n",  # cp1252 / latin-1 accents
        "[run]\nconcurrency = 8\n".encode("utf-16"),  # PowerShell's default redirection
    ],
)
def test_a_config_file_that_is_not_utf8_is_a_problem(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "certimport.toml"
    path.write_bytes(content)
    [problem] = problems_of(path, environ={})
    assert problem.startswith(f"{path}: not UTF-8 text (byte ")
    assert problem.endswith("): save it as UTF-8")


def test_whole_numbers_are_accepted_however_written(tmp_path: Path) -> None:
    path = toml(tmp_path, "[run]\nconcurrency = 8.0\nbatch = '5'\nmax_attempts = 3\n")
    settings = load_settings(path, environ={"CERTIMPORT_CHUNK_SIZE": " 2000 "})
    assert (settings.concurrency, settings.batch, settings.max_attempts) == (8, 5, 3)
    assert settings.chunk_size == 2000
    assert isinstance(settings.concurrency, int)
