"""Identities and least privilege on the bus: nkeys, grants derived from code, server config.

Who sent a message is what nats-server vouches for: every connection authenticates
with its identity's nkey, and an identity may publish requests only with its own name
as the subject's last token (``grants.call``), so a service reads its caller from the
subject (``MessageContext.caller``), never from a header.
"""

from agentbus.framework.auth import grants
from agentbus.framework.auth.grants import Grants, inbox_prefix
from agentbus.framework.auth.keys import new_seed, public_key, read_seed
from agentbus.framework.auth.roles import (
    ADMIN,
    OPERATOR,
    admin_grants,
    client_grants,
    context_grants,
    operator_grants,
    service_grants,
)
from agentbus.framework.auth.store import AuthFolder, Identity

__all__ = [
    "ADMIN",
    "OPERATOR",
    "AuthFolder",
    "Grants",
    "Identity",
    "admin_grants",
    "client_grants",
    "context_grants",
    "grants",
    "inbox_prefix",
    "new_seed",
    "operator_grants",
    "public_key",
    "read_seed",
    "service_grants",
]
