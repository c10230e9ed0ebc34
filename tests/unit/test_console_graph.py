"""The console's run graph (``legato.console.graphs``): each step a node coloured by where
it stands, and a long run drawn by its first and last steps."""

from __future__ import annotations

from datetime import UTC, datetime

from legato.console.graphs import HEAD, TAIL, run_graph
from legato.model import RunStatus
from legato.model.description import RunDescription, StepSummary

AT = datetime(2026, 12, 4, tzinfo=UTC)


def described(steps: list[StepSummary], status: RunStatus = RunStatus.COMPLETED) -> RunDescription:
    return RunDescription(
        run_id="r-1",
        workflow="checkout",
        status=status,
        created_at=AT,
        updated_at=AT,
        current_step=None,
        attempt=None,
        last_error=None,
        completed_steps=[s.name for s in steps],
        compensations_done=[],
        compensations_pending=[],
        next="nothing",
        steps=steps,
    )


def test_each_step_is_a_node_coloured_by_its_status() -> None:
    steps = [
        StepSummary("1", "reserve", "completed", 1, compensable=True, compensation="completed"),
        StepSummary("2", "charge", "failed", 3),
    ]
    graph = run_graph(described(steps, RunStatus.COMPENSATED))
    assert 's1["reserve / undo: completed"]:::compensated' in graph
    assert 's2["charge (3 attempts)"]:::failed' in graph
    assert "s1 --> s2" in graph and "outcome" in graph


def test_a_long_run_is_drawn_by_its_first_and_last_steps() -> None:
    steps = [StepSummary(str(n), f"tick-{n}", "completed", 1) for n in range(1, 1001)]
    steps[-1] = StepSummary("1000", "tick-1000", "failed", 2)
    graph = run_graph(described(steps, RunStatus.FAILED))
    nodes = [line for line in graph.splitlines() if ":::" in line and "[" in line]
    assert len(nodes) == HEAD + TAIL + 2  # and the steps between, and the outcome
    assert 's1["tick-1"]' in graph and f's{HEAD}["tick-{HEAD}"]' in graph
    assert f"… {1000 - HEAD - TAIL} more steps (see the timeline)" in graph
    assert f"s{HEAD} --> more" in graph and f"more --> s{1000 - TAIL + 1}" in graph
    assert 's1000["tick-1000 (2 attempts)"]:::failed' in graph
    assert len(graph) < 5_000  # far below Mermaid's limit on a diagram's text


def test_a_run_one_step_over_the_limit_is_drawn_whole() -> None:
    steps = [StepSummary(str(n), f"s-{n}", "completed", 1) for n in range(1, HEAD + TAIL + 2)]
    graph = run_graph(described(steps))
    assert "more steps" not in graph and f's{HEAD + TAIL + 1}["s-{HEAD + TAIL + 1}"]' in graph
