"""`hpsearch agent`: run a study's trials on this machine with your own training code."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from hpsearch.cli.client import TokenOption, UrlOption
from hpsearch.cli.listing import LazyConsole

console = LazyConsole(stderr=True)


def register(app: typer.Typer) -> None:
    """Add `hpsearch agent` to the `hpsearch` app."""
    app.command("agent")(agent)


def agent(
    study_id: Annotated[int, typer.Argument(help="The study whose trials to run.")],
    trainer: Annotated[
        str,
        typer.Option(
            help="module:function (or module:TrainerClass) to train each trial with; the"
            " module is imported from the current folder or the Python path."
        ),
    ],
    max_trials: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many trials (default: never).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="This agent's name on its trials (default: host:pid).")
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Lease the study's trials from the server one at a time and train them here, reporting
    each step, until the study ends. Ctrl-C (or SIGTERM) gives the running trial back: it is
    queued again at once. A trial this agent stops reporting on (it was killed, say) is ended
    `failed: lost` after the server's lease time and runs again elsewhere."""
    from hpsearch.agent import agent as run_agent
    from hpsearch.agent import load_trainer
    from hpsearch.client import ApiError

    sys.path.insert(0, "")  # as `python -m` does: the user's module is in the current folder
    logging.getLogger("hpsearch.agent").setLevel(logging.INFO)
    try:
        ran = run_agent(
            study_id, load_trainer(trainer), url=url, token=token, max_trials=max_trials, name=name
        )
    except ApiError as exc:
        console.print(str(exc), style="red", markup=False)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        # Its trial, if it had one, is queued again already (see the log line above).
        again = f"hpsearch agent {study_id} --trainer {trainer}"
        console.print(
            f"interrupted; to go on running study {study_id} here: {again}", soft_wrap=True
        )
        raise typer.Exit(130) from None
    console.print(f"study {study_id}: {ran} trials run by this agent")
