"""``eauth audit``: verify the audit chain, sign a checkpoint."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from api.platform import Platform
from eauth.settings import Settings

audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
out = Console(soft_wrap=True, highlight=False)


@audit_app.command("verify")
def audit_verify(
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Walk the whole chain: recompute every hash and link, check every checkpoint's signature. Exit 0 if
    intact, 1 naming the first altered, missing or misplaced entry otherwise."""
    from api.audit import report_json, verify

    p = Platform.open(Settings())
    try:
        report = verify(p)
    finally:
        p.close()
    if json_output:
        print(json.dumps(report_json(report)))
    elif report.problem is None:
        out.print(f"audit chain intact: {report.entries} entries, {report.checkpoints} signed checkpoints"
                  f" (last at seq {report.last_checkpoint_seq})" if report.checkpoints else
                  f"audit chain intact: {report.entries} entries, no checkpoint yet")
    else:
        out.print(f"audit chain BROKEN at seq {report.problem.seq} ({report.problem.kind}): {report.problem.message}")
    if report.problem is not None:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign a checkpoint of the chain's last entry now (the server also does it periodically)."""
    from api.audit import checkpoint

    p = Platform.open(Settings())
    try:
        made = checkpoint(p)
    finally:
        p.close()
    out.print(f"checkpoint signed at seq {made.seq} ({made.hash})" if made else
              "nothing to sign: the last entry is checkpointed already (or the log is empty)")
