"""Issue triage: an event starts a durable workflow that reads, asks a model and writes.

Publishing ``demo.issue.opened`` starts the workflow ``triage_issue`` (one run per issue
number: a redelivered event does not start a second run). The workflow

1. normalises the title (a ``@step`` function: recorded once, replayed afterwards),
2. reads the allowed labels with the tool executor (``fs.read``),
3. asks a model to pick one label (through the model gateway),
4. writes ``triage/<number>.md`` (``fs.write``; with ``medium = "ask"`` in the tool
   policy this waits for ``agentbus runs resume`` / ``agentbus approvals approve``).

Run it with ``agentbus up -f examples/issue_triage/agentbus.toml`` (see README.md).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from agentbus.interfaces import BusMessage, Registry, event_interface
from agentbus.interfaces.catalog.model import GenerateRequest, SystemMessage, UserMessage
from agentbus.workflow_runner import RunContext, RunFailed, StartWorkflow, WorkflowApp, step


class IssueOpened(BusMessage):
    number: int = Field(gt=0)
    title: str = Field(min_length=1, max_length=300)
    body: str = ""


ISSUE_OPENED = event_interface(
    "demo.issue.opened", "1.0.0", payload=IssueOpened, description="An issue was opened."
)
REGISTRY = Registry([ISSUE_OPENED])

app = WorkflowApp("issue-triage")


class TriageInput(BaseModel):
    number: int = Field(gt=0)
    title: str = Field(min_length=1)
    body: str = ""
    model: str | None = Field(default=None, description="A model alias; unset: the first one.")


@step
async def normalise(title: str) -> str:
    return " ".join(title.split()).rstrip(".")


@app.workflow("triage_issue", input=TriageInput)
async def triage_issue(run: RunContext, issue: TriageInput) -> dict[str, Any]:
    """Label an issue and write a triage note."""
    title = await normalise(issue.title)
    labels_file = await run.tool("fs.read", {"path": "labels.txt"})
    if labels_file.status != "completed":
        raise RunFailed("invalid", f"cannot read labels.txt: {labels_file.message}")
    labels = [line.strip() for line in labels_file.content.splitlines() if line.strip()]
    model = issue.model
    if model is None:
        catalog = await run.catalog()
        model = next((a.alias for a in catalog.aliases if a.capability == "language"), None)
        if model is None:
            raise RunFailed("not_configured", "the model gateway serves no language model")
    reply = await run.model(
        GenerateRequest(
            model=model,
            messages=[
                SystemMessage(
                    content="You triage issues. Answer with exactly one label from this list: "
                    + ", ".join(labels)
                ),
                UserMessage(content=f"{title}\n\n{issue.body}"),
            ],
        ),
        stream=True,
    )
    answer = reply.message.text.strip().lower()
    label = next((known for known in labels if known in answer), "needs-triage")
    note = f"# #{issue.number} {title}\n\nlabel: {label}\n"
    path = f"triage/{issue.number}.md"
    written = await run.tool("fs.write", {"path": path, "content": note, "create_dirs": True})
    if written.status != "completed":
        raise RunFailed(written.code, f"cannot write {path}: {written.message}")
    return {"label": label, "note": path}


@app.on(ISSUE_OPENED)
def on_issue_opened(event: IssueOpened) -> StartWorkflow:
    """One run per issue: the run id is derived from the issue number."""
    return StartWorkflow(
        "triage_issue",
        {"number": event.number, "title": event.title, "body": event.body},
        run_id=f"issue-{event.number}",
    )
