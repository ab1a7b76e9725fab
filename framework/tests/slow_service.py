"""The echo service as a process, for the SIGTERM tests: ``python framework/tests/slow_service.py``.

Settings come from the environment (``AGENTBUS_*``), as in production; the
interface and service names from ``TEST_INTERFACE`` and ``TEST_SERVICE``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from agentbus.framework.runner import run
from agentbus.interfaces.message import request_interface

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script, beside its helpers

from framework_helpers import EchoReply, EchoRequest, echo_service


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    interface = request_interface(
        os.environ["TEST_INTERFACE"], "1.0.0", request=EchoRequest, reply=EchoReply
    )
    run(echo_service(interface, os.environ["TEST_SERVICE"]))


if __name__ == "__main__":
    main()
