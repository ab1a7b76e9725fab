"""The folder of a cluster's identities (``<data dir>/auth``), made by ``agentbus auth init``.

For each identity ``<name>.nk`` holds its seed (mode 0600, read only by whoever runs
as that identity); ``nats-auth.conf`` is the ``authorization`` block nats-server loads
(public keys and permissions only); ``identities.json`` records each identity's role,
public key and grants for ``agentbus auth show``. Making it again keeps existing seeds
(so running services stay connected) unless they are rotated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentbus.framework.auth.grants import Grants
from agentbus.framework.auth.keys import SEED_SUFFIX, new_seed, public_key, read_seed, write_private
from agentbus.framework.errors import ConfigError
from agentbus.interfaces.subjects import token

SERVER_CONFIG = "nats-auth.conf"
IDENTITIES = "identities.json"


@dataclass(frozen=True)
class Identity:
    """One name the server authenticates, with what it may do."""

    name: str
    role: str  # service, operator, client, admin
    grants: Grants

    def __post_init__(self) -> None:
        token(self.name)  # identities are subject tokens (the caller's token of a request)


class AuthFolder:
    """The identities of one cluster, on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def of(cls, data_dir: Path) -> AuthFolder:
        return cls(data_dir / "auth")

    def seed_file(self, name: str) -> Path:
        return self.path / f"{token(name)}{SEED_SUFFIX}"

    @property
    def server_config(self) -> Path:
        return self.path / SERVER_CONFIG

    def exists(self) -> bool:
        return self.server_config.is_file()

    def write(self, identities: list[Identity], *, rotate: set[str] | None = None) -> list[str]:
        """Write seeds (new ones only where missing or rotated) and the server's config;
        returns the names whose seed is new."""
        rotate = rotate or set()
        unknown = rotate - {identity.name for identity in identities}
        if unknown:
            raise ConfigError(
                f"cannot rotate {', '.join(sorted(unknown))}: no such identity "
                "(`agentbus auth show --all` lists them)"
            )
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path.chmod(0o700)
        made: list[str] = []
        users: list[dict[str, Any]] = []
        records: list[dict[str, Any]] = []
        for identity in identities:
            path = self.seed_file(identity.name)
            if identity.name in rotate or not path.exists():
                write_private(path, new_seed() + b"\n")
                made.append(identity.name)
            key = public_key(read_seed(path))
            users.append({"nkey": key, "permissions": identity.grants.permissions()})
            records.append(
                {"name": identity.name, "role": identity.role, "public_key": key}
                | {"grants": identity.grants.to_json()}
            )
        config = (
            "# Made by `agentbus auth init`: public keys and permissions only (the seeds are\n"
            "# the *.nk files beside it). Included by the nats-server agentbus starts.\n"
            f"authorization: {json.dumps({'users': users}, indent=2)}\n"
        )
        write_private(self.server_config, config.encode())
        write_private(self.path / IDENTITIES, json.dumps(records, indent=2).encode() + b"\n")
        return made

    def records(self) -> list[dict[str, Any]]:
        """What ``identities.json`` says (name, role, public key, grants), or ``[]``."""
        path = self.path / IDENTITIES
        if not path.is_file():
            return []
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} is unreadable ({exc}); run `agentbus auth init`") from None
        if not isinstance(records, list):
            raise ConfigError(f"{path} is not a list of identities; run `agentbus auth init`")
        return [r for r in records if isinstance(r, dict)]

    def identity_of(self, seed_file: Path) -> dict[str, Any] | None:
        """The record of the identity whose seed ``seed_file`` holds."""
        try:
            key = public_key(read_seed(seed_file))
        except ConfigError:
            return None
        return next((r for r in self.records() if r.get("public_key") == key), None)


__all__ = ["IDENTITIES", "SERVER_CONFIG", "AuthFolder", "Identity"]
