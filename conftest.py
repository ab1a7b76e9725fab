"""Shared by every test folder: the agentbus fixtures (a real nats-server, service factories).

Test folders are not packages (several are named ``tests``; under pytest's importlib
mode each test module gets a unique name from its path). Each folder's shared helpers
live in a uniquely named module (``cli_helpers``, ``framework_helpers``, ...), importable
because every test folder is put on ``sys.path`` here.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TEST_FOLDERS = [
    ROOT / "tests",
    *ROOT.glob("tests/*/"),  # tests/docker, ...
    *ROOT.glob("*/tests"),
    *ROOT.glob("components/*/tests"),
]
for folder in sorted(TEST_FOLDERS):
    if folder.is_dir() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

pytest_plugins = ["agentbus.framework.testing.plugin"]
