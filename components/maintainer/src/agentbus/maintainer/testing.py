"""Test and demo helpers: hand-made wheels of a tiny package, and a sample component repo.

``greetlib`` comes in versions that behave (``1.0.0``, ``1.0.1``, ``1.1.0``,
``2.0.0``) and one that breaks the greeting (``1.0.2``). :func:`wheel_folder`
writes them as real wheels; pointing uv at the folder (:func:`uv_environment`)
makes locking and installing work offline and fast. :func:`sample_repository`
copies ``examples/maintainers/sample-component`` into a fresh git repository.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

from git import Actor, Repo

GOOD = 'def greet(name):\n    return f"Hello, {name}!"\n'
BROKEN = 'def greet(name):\n    return f"Hi {name}"\n'
GREETLIB = {"1.0.0": GOOD, "1.0.1": GOOD, "1.0.2": BROKEN, "1.1.0": GOOD, "2.0.0": GOOD}
SAMPLE = Path(__file__).resolve().parents[5] / "examples" / "maintainers" / "sample-component"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def make_wheel(folder: Path, name: str, version: str, source: str) -> Path:
    """A pure-Python wheel with one module ``<name>/__init__.py``."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": source,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: agentbus\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    path = folder / f"{name}-{version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            data = text.encode()
            archive.writestr(zipfile.ZipInfo(member, _EPOCH), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{member},sha256={digest.decode()},{len(data)}")
        record.append(f"{info}/RECORD,,")
        archive.writestr(zipfile.ZipInfo(f"{info}/RECORD", _EPOCH), "\n".join(record) + "\n")
    return path


def wheel_folder(folder: Path) -> Path:
    """Every greetlib version as a wheel in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for version, source in GREETLIB.items():
        make_wheel(folder, "greetlib", version, source)
    return folder


def uv_environment(wheels: Path, cache: Path | None = None) -> dict[str, str]:
    """Environment variables that make uv resolve from ``wheels`` only (offline)."""
    env = {"UV_FIND_LINKS": str(wheels), "UV_NO_INDEX": "1", "UV_OFFLINE": "1"}
    if cache is not None:
        env["UV_CACHE_DIR"] = str(cache)
    return env


def sample_repository(
    destination: Path,
    *,
    name: str = "sample-greeter",
    autonomy: str | None = None,
    service: bool = True,
    source: Path = SAMPLE,
) -> Path:
    """A fresh git repository holding a copy of the sample component; returns its folder.

    ``name`` renames the component (tests sharing one NATS server keep their durable
    consumers, escalations and deployments apart); ``autonomy`` overrides agent-config's;
    ``service=False`` drops the service, so promotion only moves the deployment pointer.
    """
    component = destination / name
    shutil.copytree(source, component, ignore=shutil.ignore_patterns("__pycache__", ".*cache"))
    for file_name in ("context.json", "agent-config.json"):
        path = component / "context" / file_name
        document = json.loads(path.read_text(encoding="utf-8"))
        document["component"] = name
        if file_name == "agent-config.json":
            if autonomy is not None:
                document["autonomy"] = autonomy
            if not service:
                document.pop("service", None)
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    files = [str(p.relative_to(destination)) for p in component.rglob("*") if p.is_file()]
    with Repo.init(destination, initial_branch="main") as repo:
        with repo.config_writer() as config:
            config.set_value("user", "name", "sample owner")
            config.set_value("user", "email", "owner@example.invalid")
        repo.index.add(files)
        who = Actor("sample owner", "owner@example.invalid")
        repo.index.commit(f"{name} 1.0.0", author=who, committer=who)
    return component
