"""``legato signal``: send a signal to a run, through ``legato.Client``.

The signal is stored with the run; the worker running it delivers it when the run waits
for that name (at once if it is waiting already). Signals sent before the run waits are
kept, in order, and each is consumed once.
"""

from __future__ import annotations

from typing import Annotated

import typer

from legato.cli.options import DatabaseOption, JsonOption, connect, parse_json
from legato.cli.render import console, print_json


def signal(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run's id.")],
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The signal's name, as the workflow waits for it.")
    ],
    data_json: Annotated[
        str | None,
        typer.Option(
            "--data", help="A JSON value: the payload wait_for_signal returns. Default: null."
        ),
    ] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send signal NAME to a run; it is kept until the run waits for it."""
    payload = None if data_json is None else parse_json(data_json, "--data")
    with connect(database) as client:
        client.signal(run_id, name, payload)
        status = client.get_run(run_id).status
    if as_json:
        print_json({"run_id": run_id, "name": name, "status": status.value})
    else:
        console().print(
            f"signal {name!r} sent to run {run_id} ({status.value}); it is delivered when "
            f"the run waits for it. Follow it with `legato runs show {run_id}`.",
            markup=False,
        )
