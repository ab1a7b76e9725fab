"""Which identity a connection is, and the key that proves it."""

from __future__ import annotations

import re
from pathlib import Path

from agentbus.framework.auth.roles import OPERATOR
from agentbus.framework.auth.store import AuthFolder
from agentbus.framework.config import Settings

REFUSAL = re.compile(r'permissions violation for (publish|subscription) to "([^"]*)"')

GRANT_HINT = (
    "if it should be allowed, declare it (Service.uses for calls, Service.emits for events, "
    "Service.extra_grants for other subjects), then `agentbus auth init` and restart the "
    "service; `agentbus auth show` lists what an identity may do"
)


def identity_and_key(
    settings: Settings, component: str, *, patient: bool
) -> tuple[str, Path | None]:
    """Who this connection is, and the nkey seed file that proves it.

    An explicit ``nats_nkey_file`` (or other credentials) names no identity: it is
    ``settings.identity``, else ``component``. Without credentials, ``agentbus auth
    init``'s folder is looked in: ``<component>.nk``, and for clients (the CLI) the
    operator's key, so that commands run as the operator by default.
    """
    if settings.nats_nkey_file is not None:
        return settings.identity or component, settings.nats_nkey_file
    if settings.nats_creds_file or settings.nats_token or settings.nats_user:
        return settings.identity or component, None
    folder = AuthFolder.of(settings.data_dir)
    name = settings.identity or component
    if folder.seed_file(name).is_file():
        return name, folder.seed_file(name)
    if not patient and settings.identity is None and folder.seed_file(OPERATOR).is_file():
        return OPERATOR, folder.seed_file(OPERATOR)
    return name, None
