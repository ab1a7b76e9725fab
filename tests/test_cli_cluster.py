"""``agentbus up`` in one process, the CLI in others: status, request, publish, tail, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cli_helpers import AGENTBUS, ROOT, agentbus, cli_env

CLUSTER = ROOT / "examples" / "hello" / "agentbus.toml"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], text=True, capture_output=True, check=False)
    return [int(p) for p in out.stdout.split()]


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    env = cli_env(session_key=False, AGENTBUS_DATA_DIR=str(tmp_path / "state"))
    with (tmp_path / "up.log").open("w") as log:
        up = subprocess.Popen(
            [*AGENTBUS, "up", "-f", str(CLUSTER)], env=env, cwd=ROOT, stdout=log, stderr=log
        )
        try:
            yield up, env
        finally:
            if up.poll() is None:
                up.kill()
                up.wait()


def running_services(env: dict[str, str]) -> list[dict[str, object]]:
    done = agentbus("status", "--json", env=env)
    return json.loads(done.stdout) if done.returncode == 0 else []


def assert_authentication_is_on(env: dict[str, str], children: list[int]) -> None:
    """The cluster of `agentbus up` admits only its identities, the CLI is its operator, and
    no seed shows in a process's command line or environment."""
    data = Path(env["AGENTBUS_DATA_DIR"])
    url = urlsplit((data / "nats.url").read_text().strip())
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        info = json.loads(sock.recv(4096).split(b" ", 1)[1])
        assert info.get("auth_required") is True
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        assert b"Authorization Violation" in sock.recv(4096)
    shown = agentbus("auth", "show", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert [r["name"] for r in json.loads(shown.stdout)] == ["operator"]
    seeds = sorted((data / "auth").glob("*.nk"))
    assert [p.stem for p in seeds] == ["hello", "mcp", "operator"]
    for seed in seeds:
        assert seed.stat().st_mode & 0o777 == 0o600
        secret = seed.read_bytes().strip()
        for pid in children:
            for part in ("cmdline", "environ"):
                assert secret not in Path(f"/proc/{pid}/{part}").read_bytes()


@pytest.mark.slow
def test_up_status_requests_and_clean_ctrl_c(
    cluster: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    up, env = cluster
    services = wait_for(
        lambda: len(running_services(env)) >= 2 and running_services(env),
        30,
        "two hello replicas in `agentbus status`",
    )
    assert {(s["name"], s["version"]) for s in services} == {("hello", "1.0.0")}
    assert {s["id"] for s in services} == {"hello-0", "hello-1"}

    table = agentbus("status", env=env)
    assert table.returncode == 0
    assert "hello" in table.stdout
    assert "1.0.0" in table.stdout

    served_by = set()
    for name in ("Ada", "Grace", "Linus", "Barbara", "Ken", "Dennis"):
        done = agentbus("request", "hello.greet", json.dumps({"name": name}), env=env)
        assert done.returncode == 0, done.stderr
        reply = json.loads(done.stdout)
        assert reply["greeting"] == f"Hello, {name}!"
        served_by.add(reply["served_by"])
    assert served_by <= {"hello-0", "hello-1"}

    bad = agentbus("request", "hello.greet", '{"name": ""}', env=env)
    assert bad.returncode == 1
    assert "schema_violation" in bad.stderr

    tail = subprocess.Popen(
        [*AGENTBUS, "events", "tail", "--count", "1"],
        env=env, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(1.5)  # let the tail subscribe before the event is published
    event = {"interface": "hello.greet", "old_version": "1.0.0", "new_version": "1.1.0",
             "compatibility": "compatible", "reasons": []}  # fmt: skip
    published = agentbus("publish", "interface.changed", json.dumps(event), env=env)
    assert published.returncode == 0, published.stderr
    assert "AGENTBUS_EVENTS" in published.stdout
    out, _ = tail.communicate(timeout=30)
    assert "agentbus.events.interface.changed.v1" in out

    invalid = agentbus("publish", "interface.changed", '{"interface": 1}', env=env)
    assert invalid.returncode == 2
    assert "does not match InterfaceChanged" in invalid.stderr

    children = children_of(up.pid)
    assert len(children) >= 3  # nats-server and two replicas
    assert_authentication_is_on(env, children)
    up.send_signal(signal.SIGINT)
    assert up.wait(60) == 0
    wait_for(lambda: not any(alive(pid) for pid in children), 10, "children to exit")
    assert not (Path(env["AGENTBUS_DATA_DIR"]) / "nats.url").exists()


@pytest.mark.slow
def test_a_crashed_replica_is_restarted(
    cluster: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    up, env = cluster
    wait_for(lambda: len(running_services(env)) >= 2, 30, "two replicas")
    nats_url = (Path(env["AGENTBUS_DATA_DIR"]) / "nats.url").read_text().strip()
    before = set(children_of(up.pid))
    # a replica runs `... -m agentbus.framework.cli serve <target>`; "serve" as an argument,
    # not as a substring (nats-server contains it too, and is not restarted by design)
    victim = next(
        pid for pid in before if "serve" in Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    )
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: set(children_of(up.pid)) - before, 30, "a replacement replica")
    wait_for(lambda: len(running_services(env)) >= 2, 30, "two replicas again")
    assert nats_url
    up.send_signal(signal.SIGINT)
    assert up.wait(60) == 0


def test_status_without_a_server_says_what_to_do(tmp_path: Path) -> None:
    done = agentbus("status", env=cli_env(AGENTBUS_DATA_DIR=str(tmp_path)))
    assert done.returncode == 1
    assert "no NATS server configured" in done.stderr
    assert "Traceback" not in done.stderr
