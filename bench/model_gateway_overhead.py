"""Model gateway overhead: the same requests to the same fake provider, direct vs through NATS.

    python bench/model_gateway_overhead.py [--requests 1000] [--json]

One fake OpenAI server (a real HTTP server on loopback, ``agentbus.model_gateway.testing``)
answers both paths. *Direct* calls it from Python with the official ``openai`` SDK, as
the gateway does; *gateway* sends ``model.language.generate`` / ``model.language.stream``
over an embedded nats-server to a gateway running in its own process (the deployed
shape). Blocks of the two paths are interleaved so that machine drift hits both alike.

Figures: p50 latency of a generate call, and p50 time to the first text chunk of a
stream (each stream is read to its end, as an agent would, so that no path pays for
the previous stream's cancellation). Target (issue 3): the gateway adds <= 1.5 ms to each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai
from timing import quantile, timed

from agentbus.framework import Bus, EmbeddedNats, Settings, serve
from agentbus.interfaces import Source
from agentbus.interfaces.catalog.model import (
    GENERATE,
    STREAM,
    GenerateRequest,
    TextDelta,
    UserMessage,
)
from agentbus.model_gateway.service import ModelGateway
from agentbus.model_gateway.testing import FakeOpenAI

TARGET_MS = 1.5
PROMPT = "Say hello in two words."


def models_file(directory: Path, base_url: str) -> Path:
    path = directory / "models.toml"
    path.write_text(
        f'[providers.fake]\nkind = "openai"\nbase_url = "{base_url}"\napi_key = "k"\n'
        "max_concurrency = 64\n\n"
        '[aliases.fast]\nprovider = "fake"\nmodel = "fake-gpt"\n',
        encoding="utf-8",
    )
    return path


@contextlib.contextmanager
def gateway_process(url: str, data_dir: Path, models: Path):  # type: ignore[no-untyped-def]
    env = {**os.environ, "AGENTBUS_MODELS_FILE": str(models)}
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--url", url, "--data-dir", str(data_dir)], env=env
    )
    try:
        yield
    finally:
        child.terminate()
        child.wait(10)


async def main(requests: int) -> dict[str, float]:
    logging.basicConfig(level=logging.WARNING)
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedNats(Path(tmp)) as server,
        FakeOpenAI() as fake,
        gateway_process(server.url, Path(tmp), models_file(Path(tmp), fake.base_url)),
    ):
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="k", max_retries=0)
        messages = [{"role": "user", "content": PROMPT}]
        request = GenerateRequest(model="fast", messages=[UserMessage(content=PROMPT)])
        settings = Settings(nats_url=server.url, data_dir=Path(tmp))
        async with Bus(settings, Source("bench")) as bus:

            async def direct_generate() -> object:
                return await client.chat.completions.create(model="fake-gpt", messages=messages)  # type: ignore[arg-type]

            async def direct_first_chunk() -> float:
                started, first = time.perf_counter(), 0.0
                stream = await client.chat.completions.create(
                    model="fake-gpt",
                    messages=messages,  # type: ignore[arg-type]
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async with stream:
                    async for chunk in stream:
                        if not first and chunk.choices and chunk.choices[0].delta.content:
                            first = time.perf_counter() - started
                return first

            async def gateway_generate() -> object:
                return await bus.request(GENERATE, request, timeout=10)

            async def gateway_first_chunk() -> float:
                started, first = time.perf_counter(), 0.0
                async with bus.stream(STREAM, request, timeout=10) as chunks:
                    async for chunk in chunks:
                        if not first and isinstance(chunk.part, TextDelta):
                            first = time.perf_counter() - started
                return first

            for _ in range(300):  # wait for the gateway process to serve
                try:
                    await gateway_generate()
                    break
                except Exception:  # not up yet
                    await asyncio.sleep(0.05)
            calls = {
                "direct_generate": direct_generate,
                "gateway_generate": gateway_generate,
                "direct_first_chunk": direct_first_chunk,
                "gateway_first_chunk": gateway_first_chunk,
            }
            for call in calls.values():  # warm up every path
                await timed(call, 100)
            samples: dict[str, list[float]] = {name: [] for name in calls}
            block = 100
            for _ in range(max(1, requests // block)):
                for name, call in calls.items():
                    samples[name] += await timed(call, block)
        await client.close()
    result: dict[str, float] = {}
    for name, values in samples.items():
        result[f"{name}_p50_ms"] = quantile(values, 0.5) * 1e3
        result[f"{name}_p99_ms"] = quantile(values, 0.99) * 1e3
    result["added_generate_p50_ms"] = (
        result["gateway_generate_p50_ms"] - result["direct_generate_p50_ms"]
    )
    result["added_first_chunk_p50_ms"] = (
        result["gateway_first_chunk_p50_ms"] - result["direct_first_chunk_p50_ms"]
    )
    return result


def report(result: dict[str, float], requests: int) -> str:
    def verdict(added: float) -> str:
        return "ok" if added <= TARGET_MS else "MISSED"

    rows = [
        f"{requests} sequential calls per path, fake OpenAI server on loopback, gateway in its "
        "own process",
        f"{'':28}{'direct SDK':>12}{'gateway':>12}{'added':>10}",
    ]
    for label, key in (
        ("generate p50 (ms)", "generate"),
        ("stream first chunk p50 (ms)", "first_chunk"),
    ):
        direct, gateway = result[f"direct_{key}_p50_ms"], result[f"gateway_{key}_p50_ms"]
        added = result[f"added_{key}_p50_ms"]
        rows.append(
            f"{label:28}{direct:12.3f}{gateway:12.3f}{added:10.3f}  target <= {TARGET_MS}: "
            f"{verdict(added)}"
        )
    for label, key in (
        ("generate p99 (ms)", "generate"),
        ("stream first chunk p99 (ms)", "first_chunk"),
    ):
        direct, gateway = result[f"direct_{key}_p99_ms"], result[f"gateway_{key}_p99_ms"]
        rows.append(f"{label:28}{direct:12.3f}{gateway:12.3f}{gateway - direct:10.3f}")
    return "\n".join(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="sequential calls per path")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        logging.basicConfig(level=logging.WARNING)
        gateway = ModelGateway(Settings(nats_url=args.url, data_dir=args.data_dir))
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(gateway))
        sys.exit(0)
    figures = asyncio.run(main(args.requests))
    print(json.dumps(figures, indent=2) if args.json else report(figures, args.requests))
