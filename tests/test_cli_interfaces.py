"""``agentbus interfaces check|diff|export`` on a registry that changes between runs."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

from cli_helpers import agentbus, cli_env

from agentbus.framework import Bus, declare_all
from agentbus.interfaces.catalog.system import InterfaceChanged

V1 = """
from pydantic import Field
from agentbus.interfaces import BusMessage, Registry, request_interface

class Ask(BusMessage):
    question: str
    temperature: float = 0.5

class Answer(BusMessage):
    text: str

ASK_1 = request_interface("demo.ask", "1.0.0", request=Ask, reply=Answer)
REGISTRY = Registry([ASK_1])
"""

# The same version number, but `temperature` removed and `seed` required: breaking.
BREAKING_SAME_MAJOR = V1.replace("    temperature: float = 0.5", "    seed: int").replace(
    '"1.0.0"', '"1.1.0"'
)

BREAKING_NEW_MAJOR = V1.replace("    temperature: float = 0.5", "    seed: int").replace(
    '"1.0.0"', '"2.0.0"'
)

COMPATIBLE_MINOR = V1.replace(
    "    temperature: float = 0.5", "    temperature: float = 0.5\n    top_p: float = 1.0"
).replace('"1.0.0"', '"1.1.0"')


def write_registry(folder: Path, source: str) -> dict[str, str]:
    (folder / "demo_registry.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return cli_env(PYTHONPATH=str(folder))


def check(folder: Path, env: dict[str, str]) -> tuple[int, str]:
    done = agentbus(
        "interfaces", "check", "--schemas", str(folder / "schemas"),
        "--interfaces", "demo_registry:REGISTRY", env=env, cwd=folder,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def publish_v1(folder: Path) -> None:
    env = write_registry(folder, V1)
    done = agentbus(
        "interfaces", "export", "--schemas", str(folder / "schemas"),
        "--interfaces", "demo_registry:REGISTRY", env=env, cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (folder / "schemas" / "demo.ask" / "1.0.0.json").is_file()


def test_breaking_change_without_major_bump_fails(tmp_path: Path) -> None:
    publish_v1(tmp_path)
    code, output = check(tmp_path, write_registry(tmp_path, BREAKING_SAME_MAJOR))
    assert code == 1, output
    assert "demo.ask@1.1.0" in output
    assert "temperature" in output
    assert "seed" in output


def test_breaking_change_with_major_bump_passes(tmp_path: Path) -> None:
    publish_v1(tmp_path)
    code, output = check(tmp_path, write_registry(tmp_path, BREAKING_NEW_MAJOR))
    assert code == 0, output
    assert "not yet exported: demo.ask@2.0.0" in output


def test_compatible_change_with_minor_bump_passes(tmp_path: Path) -> None:
    publish_v1(tmp_path)
    code, output = check(tmp_path, write_registry(tmp_path, COMPATIBLE_MINOR))
    assert code == 0, output


def test_editing_a_published_version_in_place_fails(tmp_path: Path) -> None:
    publish_v1(tmp_path)
    edited = V1.replace("    temperature: float = 0.5", "    temperature: float = 0.7")
    code, output = check(tmp_path, write_registry(tmp_path, edited))
    assert code == 1, output
    assert "changed after it was published" in output


def test_diff_prints_the_verdict_and_reasons(tmp_path: Path) -> None:
    publish_v1(tmp_path)
    env = write_registry(tmp_path, BREAKING_NEW_MAJOR)
    done = agentbus(
        "interfaces", "diff", str(tmp_path / "schemas" / "demo.ask" / "1.0.0.json"),
        "demo.ask@2.0.0", "--interfaces", "demo_registry:REGISTRY", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("breaking (major bump)")
    assert "'temperature' was removed" in done.stdout


def test_the_repository_check_passes() -> None:
    done = agentbus("interfaces", "check")
    assert done.returncode == 0, done.stdout + done.stderr


TWO_VERSIONS = (
    V1.replace("REGISTRY = Registry([ASK_1])", "")
    + """
class AskV2(BusMessage):
    question: str
    seed: int

ASK_2 = request_interface("demo.ask", "2.0.0", request=AskV2, reply=Answer)
REGISTRY = Registry([ASK_1, ASK_2])
"""
)


async def test_announce_broadcasts_the_verdict(tmp_path: Path, nats_url: str, bus: Bus) -> None:
    publish_v1(tmp_path)
    env = write_registry(tmp_path, TWO_VERSIONS)
    env["AGENTBUS_NATS_URL"] = nats_url
    await declare_all(bus.js)  # what any running service does at start
    subscription = await bus.nc.subscribe("agentbus.events.interface.changed.v1")
    done = await asyncio.to_thread(
        agentbus,
        "interfaces", "announce", "demo.ask@1.0.0", "demo.ask@2.0.0",
        "--component", "demo", "--interfaces", "demo_registry:REGISTRY",
        "--schemas", str(tmp_path / "schemas"), env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "breaking" in done.stdout
    event = InterfaceChanged.model_validate_json((await subscription.next_msg(timeout=5)).data)
    await subscription.unsubscribe()
    assert (event.interface, event.old_version, event.new_version) == ("demo.ask", "1.0.0", "2.0.0")
    assert event.compatibility == "breaking"
    assert event.component == "demo"
    assert any("temperature" in reason for reason in event.reasons)
