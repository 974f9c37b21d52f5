"""The emulator's one command line: ``certimport emulator`` and ``python -m importer.emulator``.

At import time this module needs only click, the standard library and the emulator's own
`config` (standard library only): the server, aiohttp and the event loop are imported when the
command runs, so that ``certimport --help`` stays fast. Every value is checked by a click type,
so bad input is a usage error (exit 2) and never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, NoReturn

import click

from .config import RETRY_AFTER_FORMS, EmulatorConfig, _loopback_address

_Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

PROG: Final = "python -m importer.emulator"
EXIT_USAGE: Final = 2

_LIMIT: Final = click.IntRange(min=0)
_WINDOW: Final = click.FloatRange(min=0, min_open=True)


def build_config(
    *,
    tokens: Sequence[str] = (),
    write_limit: int = EmulatorConfig.write_limit,
    write_window: float = EmulatorConfig.write_window,
    read_limit: int = EmulatorConfig.read_limit,
    read_window: float = EmulatorConfig.read_window,
    latency: float = EmulatorConfig.latency,
    fault_rate: float = EmulatorConfig.fault_rate,
    seed: int | None = None,
    token_lifetime: int = EmulatorConfig.token_lifetime,
    identity_header: str = EmulatorConfig.identity_header,
    retry_after: str = EmulatorConfig.retry_after,
) -> EmulatorConfig:
    """The config that the command's flags ask for; raises `ValueError` when it is invalid."""
    return EmulatorConfig(
        write_limit=write_limit,
        write_window=write_window,
        read_limit=read_limit,
        read_window=read_window,
        latency=latency,
        fault_rate=fault_rate,
        seed=seed,
        static_tokens=frozenset(tokens),
        token_lifetime=token_lifetime,
        identity_header=identity_header,
        retry_after=retry_after,
    )


def _loopback_host(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``--host``, checked as `GraphEmulator.start` checks it (loopback only)."""
    try:
        _loopback_address(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    return value


def _fail(message: str) -> NoReturn:
    """Print one ``error:`` line and end the command with exit 2."""
    click.echo(f"error: {message}", err=True)
    click.get_current_context().exit(EXIT_USAGE)


_OPTIONS: Final[tuple[_Decorator, ...]] = (
    click.option(
        "--host",
        default="127.0.0.1",
        show_default=True,
        callback=_loopback_host,
        help="Loopback address only (127.0.0.0/8, ::1 or localhost).",
    ),
    click.option(
        "--port",
        default=8080,
        show_default=True,
        type=click.IntRange(0, 65535),
        help="0 picks a free port.",
    ),
    click.option(
        "--token",
        "--static-token",
        "tokens",
        multiple=True,
        metavar="TOKEN",
        help="A bearer token always accepted (repeatable).",
    ),
    click.option(
        "--write-limit",
        default=EmulatorConfig.write_limit,
        show_default=True,
        type=_LIMIT,
        help="Writes allowed per write window (0 = no throttle).",
    ),
    click.option(
        "--write-window",
        default=EmulatorConfig.write_window,
        show_default=True,
        type=_WINDOW,
        help="Seconds.",
    ),
    click.option(
        "--read-limit",
        default=EmulatorConfig.read_limit,
        show_default=True,
        type=_LIMIT,
        help="Reads allowed per read window (0 = no throttle).",
    ),
    click.option(
        "--read-window",
        default=EmulatorConfig.read_window,
        show_default=True,
        type=_WINDOW,
        help="Seconds.",
    ),
    click.option(
        "--latency",
        default=EmulatorConfig.latency,
        show_default=True,
        type=click.FloatRange(min=0),
        help="Seconds from taking up a request to its answer.",
    ),
    click.option(
        "--fault-rate",
        default=EmulatorConfig.fault_rate,
        show_default=True,
        type=click.FloatRange(0, 1),
        help="Share of POSTs answered with a random fault (503, 504, dropped).",
    ),
    click.option(
        "--seed", type=int, help="Seed for the faults and ids, for reproducible rehearsals."
    ),
    click.option(
        "--token-lifetime",
        default=EmulatorConfig.token_lifetime,
        show_default=True,
        type=click.IntRange(min=1),
        help="Seconds a token issued by /msi/token or /{tenant}/oauth2/v2.0/token stays valid.",
    ),
    click.option(
        "--identity-header",
        default=EmulatorConfig.identity_header,
        show_default=True,
        metavar="SECRET",
        help="The X-IDENTITY-HEADER secret that /msi/token requires (IDENTITY_HEADER).",
    ),
    click.option(
        "--retry-after",
        default=EmulatorConfig.retry_after,
        show_default=True,
        type=click.Choice(RETRY_AFTER_FORMS),
        help="Retry-After of a throttled request: whole seconds (as Graph mostly sends), "
        "fractional, or absent (Intune's 429 with a JSON string as its message).",
    ),
    click.option(
        "--tls-cert",
        type=click.Path(exists=True, dir_okay=False),
        help="Serve over TLS with this PEM certificate (chain): https, as a sign-in authority "
        "must be for azure-identity. Needs --tls-key.",
    ),
    click.option(
        "--tls-key",
        type=click.Path(exists=True, dir_okay=False),
        help="The PEM private key of --tls-cert.",
    ),
)


def _with_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Apply the command's options, listed in the order `--help` shows them."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


@click.command("emulator", context_settings={"help_option_names": ["-h", "--help"]})
@_with_options
def emulator_command(
    host: str, port: int, tls_cert: str | None, tls_key: str | None, **settings: Any
) -> None:
    """Serve the built-in Microsoft Graph emulator on a loopback address.

    It serves the certificate-state collection under /beta, a managed-identity token endpoint
    (/msi/token), a sign-in authority's token endpoint (/{tenant}/oauth2/v2.0/token, with its
    OpenID discovery document) and admin endpoints (/_stats, /_records, /_script, /_reset,
    /_config, /_expire_tokens, /_seed). It announces its address on stderr; Ctrl-C stops it
    (exit 0). With --tls-cert and --tls-key it serves https, so that it can stand in for the
    authority (azure-identity accepts only https): point AZURE_AUTHORITY_HOST or [auth]
    authority_host at it and trust its CA with SSL_CERT_FILE.

    \b
    Example (two shells):
      certimport emulator --port 8080 --token dev-token
      CERTIMPORT_BASE_URL=http://127.0.0.1:8080/beta CERTIMPORT_AUTH_METHOD=static \\
        CERTIMPORT_ACCESS_TOKEN=dev-token certimport run samples/certificates.csv

    \b
    The same command runs as python -m importer.emulator.
    """
    try:
        config = build_config(**settings)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together: give both or neither")
    try:
        _run(config, host, port, (tls_cert, tls_key) if tls_cert and tls_key else None)
    except KeyboardInterrupt:
        return  # Ctrl-C is how an operator stops the emulator


def _run(config: EmulatorConfig, host: str, port: int, tls: tuple[str, str] | None = None) -> None:
    """Serve until interrupted, on the event loop every certimport command runs on."""
    import ssl

    from importer import aio

    from .server import serve

    try:
        aio.loop_name()
    except Exception as exc:  # importer.errors.UsageError: a bad CERTIMPORT_EVENT_LOOP
        _fail(str(exc))
    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(*tls)
        except (OSError, ssl.SSLError) as exc:
            _fail(f"cannot load --tls-cert/--tls-key: {exc}")
    try:
        aio.run(serve(config, host, port, ssl_context=context))
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line as a function (``argv`` without the program name): the exit code.

    Each error is printed once on stderr, as the command line prints it.
    """
    args = None if argv is None else list(argv)
    try:
        code = emulator_command.main(args=args, prog_name=PROG, standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        return 1
    return code if isinstance(code, int) else 0
