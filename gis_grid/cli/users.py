"""``gis-grid user add|list|revoke``: users of the web API and their tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from gis_grid.cli.common import (
    Format,
    FormatOpt,
    StoreArg,
    app,
    fail_cleanly,
    open_arg,
    out,
    print_frame,
    print_json,
)
from gis_grid.tables import records

user_app = typer.Typer(help="Users of the web API: add (prints a token), list, revoke.")
app.add_typer(user_app, name="user")


@user_app.command("add")
@fail_cleanly
def user_add(
    store: StoreArg,
    user_id: Annotated[str, typer.Argument(help="A login name, e.g. wang.fang.")],
    role: Annotated[
        str, typer.Option(help="admin, planner, supervisor, leadership or grid_worker.")
    ],
    name: Annotated[str | None, typer.Option(help="The person's name.")] = None,
    staff_id: Annotated[
        str | None, typer.Option(help="For a grid worker: their staff id (they see its grids).")
    ] = None,
) -> None:
    """Add a user and print their token (shown once; the store keeps only its hash)."""
    with open_arg(store) as s:
        token = s.add_user(user_id, name or user_id, role, staff_id)
    out.print(token)


@user_app.command("list")
@fail_cleanly
def user_list(store: StoreArg, fmt: FormatOpt = Format.table) -> None:
    """Users, their roles and whether their token still works."""
    with open_arg(store) as s:
        frame = s.users()
    if fmt is Format.json:
        print_json({"users": records(frame)})
        return
    print_frame(frame, "users")


@user_app.command("revoke")
@fail_cleanly
def user_revoke(store: StoreArg, user_id: Annotated[str, typer.Argument(help="The user.")]) -> None:
    """Stop a user's token from working (running servers: within 5 seconds)."""
    with open_arg(store) as s:
        s.revoke_user(user_id)
    out.print(f"{user_id}: token revoked (servers that checked it lately stop within 5 s)")
