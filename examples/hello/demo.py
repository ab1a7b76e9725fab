"""The foundation demo: a local cluster on embedded NATS, driven through the CLI.

    python examples/hello/demo.py

Starts ``agentbus up`` with two replicas of the hello service, sends requests
(they split between the replicas), publishes an event, shows ``agentbus
status``, then stops the cluster with Ctrl-C (SIGINT) and checks that no
process is left behind.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
AGENTBUS = [sys.executable, "-m", "agentbus.framework.cli"]


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def agentbus(*args: str, env: dict[str, str], check: bool = True) -> str:
    print(f"$ agentbus {shlex.join(args)}", flush=True)
    done = subprocess.run([*AGENTBUS, *args], env=env, text=True, capture_output=True, check=False)
    print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        print(done.stderr, end="", file=sys.stderr, flush=True)
        if check:
            raise SystemExit(f"`agentbus {args[0]}` failed with exit code {done.returncode}")
    return done.stdout


def wait_for_services(env: dict[str, str], count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(
            [*AGENTBUS, "status", "--json"], env=env, text=True, capture_output=True, check=False
        )
        if done.returncode == 0 and len(json.loads(done.stdout or "[]")) >= count:
            return
        time.sleep(0.3)
    raise SystemExit(f"the cluster did not show {count} services within {timeout:.0f}s")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="agentbus-demo-") as data_dir:
        env = {**os.environ, "AGENTBUS_DATA_DIR": data_dir}
        env.pop("AGENTBUS_NATS_URL", None)
        say("agentbus up: embedded nats-server + 2 replicas of the hello service")
        up = subprocess.Popen([*AGENTBUS, "up", "-f", str(HERE / "agentbus.toml")], env=env)
        try:
            wait_for_services(env, 2)
            say("requests split across the replicas (served_by)")
            for name in ("Ada", "Grace", "Linus", "Barbara"):
                agentbus("request", "hello.greet", json.dumps({"name": name}), env=env)
            say("a bad request gets a structured error, and the service keeps answering")
            agentbus("request", "hello.greet", '{"name": ""}', env=env, check=False)
            agentbus("request", "hello.greet", '{"name": "nobody"}', env=env, check=False)
            say("an event, published durably to the events stream")
            agentbus(
                "publish",
                "interface.changed",
                json.dumps(
                    {
                        "interface": "hello.greet",
                        "old_version": "1.0.0",
                        "new_version": "1.1.0",
                        "compatibility": "compatible",
                        "reasons": ["field 'language' was added"],
                    }
                ),
                env=env,
            )
            say("agentbus status: services found through $SRV.INFO / $SRV.STATS")
            agentbus("status", env=env)
        finally:
            say("Ctrl-C: the cluster stops cleanly")
            children = subprocess.run(
                ["pgrep", "-P", str(up.pid)], text=True, capture_output=True, check=False
            ).stdout.split()
            up.send_signal(signal.SIGINT)
            code = up.wait(60)
        leftovers = [pid for pid in map(int, children) if alive(pid)]
        if code != 0 or leftovers:
            raise SystemExit(f"unclean stop: exit code {code}, processes left: {leftovers}")
        print(f"stopped: exit code {code}, no process left behind ({len(children)} children)")


if __name__ == "__main__":
    main()
