"""A test kit for agentbus services, in the style of httpx's ``MockTransport``.

- :class:`MockService` answers interfaces on the real bus from plain functions (or fixed
  replies) and records what it was sent;
- :func:`child_environment`: the environment for a CLI or other child process of a test;
- :class:`Intruder`: a raw client holding one identity's key, for tests of least privilege;
- :func:`eventually` polls a condition with a deadline and says what it waited for;
- :mod:`agentbus.framework.testing.plugin`: the pytest fixtures (a real nats-server,
  ``settings``, ``bus``, ``start_service``), enabled with
  ``pytest_plugins = ["agentbus.framework.testing.plugin"]``.

Nothing here imports pytest, so a fake built on :class:`MockService` can also run as a
process (``agentbus serve module:FakeClass``).
"""

from agentbus.framework.testing.environment import child_environment, settings_as
from agentbus.framework.testing.intruder import Intruder
from agentbus.framework.testing.mock import Answer, MockService
from agentbus.framework.testing.waiting import eventually

__all__ = ["Answer", "Intruder", "MockService", "child_environment", "eventually", "settings_as"]
