"""A run drawn as a Mermaid flowchart: its steps in the order it reached them, each node
coloured by where it stands (completed, running, retrying, failed, compensated), then
what it waits for or does next. Labels are escaped for Mermaid (the page escapes the
whole text again for HTML): a step or run id holding markup is shown as text.

A long run is drawn by its first ``HEAD`` and last ``TAIL`` steps, with one node for the
ones between (the timeline lists them all): a thousand nodes would be unreadable, slow
to lay out, and past Mermaid's limit on a diagram's text."""

from __future__ import annotations

from legato.mermaid import quoted as label
from legato.model import RunStatus
from legato.model.description import RunDescription, StepSummary

CLASSES = {
    "completed": "fill:#d8f5d0,stroke:#2e7d32",
    "running": "fill:#d6e8ff,stroke:#1565c0",
    "retrying": "fill:#ffe9c7,stroke:#ef6c00",
    "failed": "fill:#ffd6d6,stroke:#c62828",
    "compensated": "fill:#eadcff,stroke:#6a1b9a",
    "waiting": "fill:#fff8c4,stroke:#9e9d24",
    "ended": "fill:#eeeeee,stroke:#616161",
}


HEAD = 10
TAIL = 20


def run_graph(run: RunDescription) -> str:
    """The Mermaid ``flowchart LR`` of ``run``."""
    lines = ["flowchart LR", f"  start([{label(run.workflow)}])"]
    previous = "start"
    steps: list[tuple[int, StepSummary | None]] = list(enumerate(run.steps, 1))
    left_out = len(steps) - HEAD - TAIL
    if left_out > 1:
        steps = [*steps[:HEAD], (0, None), *steps[-TAIL:]]
    for n, step in steps:
        if step is None:  # the steps between the first and the last ones drawn
            lines.append(f"  more[{label(f'… {left_out} more steps (see the timeline)')}]:::ended")
            lines.append(f"  {previous} --> more")
            previous = "more"
            continue
        node = f"s{n}"
        status = step.status
        if step.compensation == "completed":
            status = "compensated"
        elif step.compensation in ("running", "retrying"):
            status = "retrying" if step.compensation == "retrying" else "running"
        elif step.compensation == "failed":
            status = "failed"
        text = step.name if step.attempts <= 1 else f"{step.name} ({step.attempts} attempts)"
        if step.compensation is not None:
            text += f" / undo: {step.compensation}"
        lines.append(f"  {node}[{label(text)}]:::{_class(status)}")
        lines.append(f"  {previous} --> {node}")
        previous = node
    end = _end(run)
    if end is not None:
        text, kind = end
        lines.append(f"  outcome([{label(text)}]):::{kind}")  # "end" is a Mermaid keyword
        lines.append(f"  {previous} -.-> outcome")
    lines += [f"  classDef {name} {style}" for name, style in CLASSES.items()]
    return "\n".join(lines) + "\n"


def _class(status: str) -> str:
    return status if status in CLASSES else "running"


def _end(run: RunDescription) -> tuple[str, str] | None:
    status = run.status
    if status is RunStatus.COMPLETED:
        return "completed", "completed"
    if status in (RunStatus.FAILED, RunStatus.COMPENSATION_FAILED, RunStatus.BLOCKED):
        return status.value, "failed"
    if status in (RunStatus.COMPENSATED, RunStatus.CANCELLED):
        return status.value, "compensated"
    if status in (RunStatus.WAITING, RunStatus.SLEEPING):
        return _short(run.next), "waiting"
    return None


def _short(text: str, most: int = 60) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"
