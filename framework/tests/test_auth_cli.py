"""``agentbus auth init`` and ``agentbus auth show`` on a cluster file."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from agentbus.framework.auth import AuthFolder
from agentbus.framework.cli.main import app

CLUSTER = """
[[service]]
name = "hello"
target = "agentbus.framework.testing.mock:MockService"
"""


def run(tmp_path: Path, *args: str) -> str:
    result = CliRunner().invoke(
        app, ["--data-dir", str(tmp_path / "data"), *args], env={"AGENTBUS_NATS_NKEY_FILE": None}
    )
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # Rich wraps lines at the terminal's width


def test_init_makes_private_keys_keeps_them_and_rotates_on_request(tmp_path: Path) -> None:
    cluster = tmp_path / "agentbus.toml"
    cluster.write_text(CLUSTER)
    assert "operator, mcp, hello new" in run(tmp_path, "auth", "init", "-f", str(cluster))
    folder = AuthFolder.of(tmp_path / "data")
    seed = folder.seed_file("hello").read_bytes()
    assert folder.seed_file("hello").stat().st_mode & 0o777 == 0o600

    assert "no new keys" in run(tmp_path, "auth", "init", "-f", str(cluster))
    assert folder.seed_file("hello").read_bytes() == seed
    assert "hello new" in run(tmp_path, "auth", "init", "-f", str(cluster), "--rotate", "hello")
    assert folder.seed_file("hello").read_bytes() != seed


def test_show_says_the_cli_is_the_operator_and_lists_every_identity(tmp_path: Path) -> None:
    cluster = tmp_path / "agentbus.toml"
    cluster.write_text(CLUSTER)
    run(tmp_path, "auth", "init", "-f", str(cluster))
    mine = json.loads(run(tmp_path, "auth", "show", "--json"))
    assert [r["name"] for r in mine] == ["operator"]
    assert "_INBOX_operator.>" in mine[0]["grants"]["subscribe"]
    every = json.loads(run(tmp_path, "auth", "show", "--all", "--json"))
    assert {r["name"] for r in every} == {"operator", "mcp", "hello"}
    hello = next(r for r in every if r["name"] == "hello")
    assert all(not s.startswith("_INBOX_operator") for s in hello["grants"]["subscribe"])
