"""The configuration through the CLI: a secret in a config file ends the command with exit 2."""

from __future__ import annotations

from pathlib import Path

from helpers import CONFIG_SECRET, SECRET_REFUSED, invoke


def test_a_secret_in_the_config_file_ends_the_cli_with_exit_2(isolated: Path) -> None:
    config = isolated / "certimport.toml"
    config.write_text(f'[auth]\nclient_secret = "{CONFIG_SECRET}"\n', encoding="utf-8")
    inventory = isolated / "inv.csv"
    inventory.write_text("certificateThumbprint\n", encoding="utf-8")
    result = invoke("inspect", str(inventory), "--config", str(config))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: invalid configuration:\n  - "
        + SECRET_REFUSED.format(
            path=config, where="[auth] client_secret", variable="AZURE_CLIENT_SECRET"
        )
        + "\n"
    )
    assert CONFIG_SECRET not in result.stdout + result.stderr
