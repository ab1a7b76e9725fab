"""NATS nkeys: one Ed25519 key pair per identity, the seed in a file only its owner reads.

The server holds only public keys (``U...``); a client proves it holds the seed by
signing the server's nonce (nats-py does it from the ``nkeys_seed`` file). A seed
never leaves its file: not in a log, a repr, an environment variable or a reply.
"""

from __future__ import annotations

import os
from pathlib import Path

import nkeys

from agentbus.framework.errors import ConfigError

SEED_SUFFIX = ".nk"


def new_seed() -> bytes:
    """A fresh user seed (``SU...``), from the OS's random source."""
    seed: bytes = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    return seed


def public_key(seed: bytes) -> str:
    """The public key (``U...``) the server config lists for ``seed``."""
    pair = nkeys.from_seed(bytearray(seed))
    try:
        key: bytes = pair.public_key
        return key.decode()
    finally:
        pair.wipe()


def read_seed(path: Path) -> bytes:
    """The seed in ``path``, refusing files others may read (a leaked seed is an identity)."""
    try:
        mode = path.stat().st_mode
        seed = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the NATS key file {path}: {exc.strerror}; run `agentbus auth init`"
        ) from None
    if mode & 0o077:
        raise ConfigError(
            f"the NATS key file {path} may be read by others (mode {mode & 0o777:o}): "
            f"`chmod 600 {path}`, or `agentbus auth init --rotate` if it leaked"
        )
    try:
        public_key(seed)
    except Exception:  # nkeys raises its own errors and binascii's: never show the content
        raise ConfigError(
            f"{path} is not an nkeys user seed; `agentbus auth init --rotate` makes a new one"
        ) from None
    return seed


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (mode 0600 from the first byte)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)


__all__ = ["SEED_SUFFIX", "new_seed", "public_key", "read_seed", "write_private"]
