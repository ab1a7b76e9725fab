"""``agentbus models list`` and ``agentbus models ask <alias> "prompt"`` (streams the answer)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from agentbus.framework import Bus
from agentbus.framework.cli import console, err_console, options, run, with_bus
from agentbus.interfaces.catalog.model import (
    CATALOG,
    STREAM,
    CatalogReply,
    CatalogRequest,
    Finish,
    GenerateRequest,
    GenerationSettings,
    Message,
    SystemMessage,
    TextDelta,
    ToolCallDelta,
    UserMessage,
)

app = typer.Typer(help="The model gateway: configured aliases, and asking a model.")


@app.command("list")
def list_models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalog as JSON.")] = False,
) -> None:
    """The model aliases the running gateway serves, with their capabilities."""

    async def work(bus: Bus) -> CatalogReply:
        return await bus.request(CATALOG, CatalogRequest())

    catalog = run(with_bus(options(ctx), work))
    if as_json:
        console.print_json(catalog.model_dump_json())
        return
    if not catalog.aliases:
        console.print(
            "no model is configured: add [aliases.<name>] to models.toml (AGENTBUS_MODELS_FILE), "
            "or set OPENAI_BASE_URL / OPENAI_API_KEY / ANTHROPIC_API_KEY for the gateway "
            "(under `agentbus up`, list them in its pass_env)",
            markup=False,
        )
        return
    table = Table(title=f"model aliases ({catalog.source})")
    for column in ("alias", "capability", "provider", "model", "abilities", "fallback"):
        table.add_column(column)
    for alias in catalog.aliases:
        abilities = [a for a in ("tools", "vision", "structured_output") if getattr(alias, a)]
        if alias.context_window:
            abilities.append(f"context {alias.context_window}")
        if alias.dimensions:
            abilities.append(f"{alias.dimensions} dims")
        table.add_row(
            alias.alias,
            alias.capability,
            f"{alias.provider} ({alias.provider_kind})",
            alias.model,
            ", ".join(abilities),
            ", ".join(alias.fallback),
        )
    console.print(table)


@app.command("ask")
def ask(
    ctx: typer.Context,
    alias: Annotated[str, typer.Argument(help="A model alias (see `agentbus models list`).")],
    prompt: Annotated[str, typer.Argument(help="What to ask.")],
    system: Annotated[str | None, typer.Option(help="A system prompt.")] = None,
    temperature: Annotated[float | None, typer.Option(min=0, max=2)] = None,
    max_tokens: Annotated[int | None, typer.Option(min=1)] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each chunk.")] = 120.0,
) -> None:
    """Ask a model; the answer streams to the terminal as it arrives."""
    messages: list[Message] = []
    if system:
        messages.append(SystemMessage(content=system))
    messages.append(UserMessage(content=prompt))
    request = GenerateRequest(
        model=alias,
        messages=messages,
        settings=GenerationSettings(temperature=temperature, max_tokens=max_tokens),
    )

    async def work(bus: Bus) -> Finish | None:
        finish = None
        async with bus.stream(STREAM, request, timeout=timeout) as chunks:
            async for chunk in chunks:
                part = chunk.part
                if isinstance(part, TextDelta):
                    sys.stdout.write(part.text)
                    sys.stdout.flush()
                elif isinstance(part, ToolCallDelta) and part.name:
                    sys.stdout.write(f"\n[tool call {part.name}] ")
                elif isinstance(part, ToolCallDelta):
                    sys.stdout.write(part.arguments)
                elif isinstance(part, Finish):
                    finish = part
        sys.stdout.write("\n")
        return finish

    finish = run(with_bus(options(ctx), work))
    if finish is not None:
        usage = finish.usage
        err_console.print(
            f"[dim]{finish.alias} -> {finish.provider}/{finish.model}: {finish.finish_reason}, "
            f"{usage.input_tokens} tokens in, {usage.output_tokens} out[/]"
        )
