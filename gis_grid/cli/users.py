"""``gis-grid user add|list|revoke``: users of the web API and their tokens."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import typer

from gis_grid.cli.common import (
    Format,
    FormatOpt,
    StoreArg,
    app,
    err,
    fail_cleanly,
    open_arg,
    out,
    print_frame,
    print_json,
    tr,
)
from gis_grid.tables import records

user_app = typer.Typer(
    help="Users of the web API: add or rotate (prints a token), list, revoke.",
    no_args_is_help=True,
)
ExpiresOpt = Annotated[
    str | None,
    typer.Option(
        "--expires",
        help="When the token stops working: 30d, 12h, 2w, a date (2027-06-30) or never "
        "(default: 90 days).",
    ),
]
app.add_typer(user_app, name="user")


@user_app.command("add")
@fail_cleanly
def user_add(
    store: StoreArg,
    user_id: Annotated[str, typer.Argument(help="A login name, e.g. wang.fang.")],
    role: Annotated[
        str,
        typer.Option(help="admin, planner, supervisor, leadership, grid_worker or reporter."),
    ],
    name: Annotated[str | None, typer.Option(help="The person's name.")] = None,
    staff_id: Annotated[
        str | None, typer.Option(help="For a grid worker: their staff id (they see its grids).")
    ] = None,
    expires: ExpiresOpt = None,
) -> None:
    """Add a user and print their token (shown once; the store keeps only its hash)."""
    with open_arg(store) as s:
        token = s.add_user(user_id, name or user_id, role, staff_id, expires=expires)
        until = s.users().set_index("user_id").loc[user_id, "expires_at"]
    out.print(token)
    err.print(tr("token_until", user=user_id, until=until or tr("no_expiry")))


@user_app.command("rotate")
@fail_cleanly
def user_rotate(
    store: StoreArg,
    user_id: Annotated[str, typer.Argument(help="The user.")],
    expires: ExpiresOpt = None,
) -> None:
    """Give a user a new token and print it; their old token stops working."""
    with open_arg(store) as s:
        token = s.rotate_user(user_id, expires=expires)
        until = s.users().set_index("user_id").loc[user_id, "expires_at"]
    out.print(token)
    err.print(tr("token_rotated", user=user_id, until=until or tr("no_expiry")))


@user_app.command("list")
@fail_cleanly
def user_list(store: StoreArg, fmt: FormatOpt = Format.table) -> None:
    """Users, their roles, whether their token works, until when, and its last use."""
    from gis_grid.domain.access import token_state

    with open_arg(store) as s:
        frame = s.users()
    frame.insert(3, "token", [token_state(u) for u in frame.to_dict("records")])
    if fmt is Format.json:
        print_json({"users": records(frame)})
        return
    # what fits 80 columns (names and exact times: --format json)
    shown = pd.DataFrame(
        {
            "user": frame["user_id"],
            "role": frame["role"],
            "token": frame["token"],
            "expires": frame["expires_at"].map(lambda v: str(v)[:10] if pd.notna(v) else "never"),
            "last use": frame["last_used_at"].map(
                lambda v: str(v)[:16].replace("T", " ") if pd.notna(v) else "—"
            ),
        }
    )
    print_frame(shown, tr("users"))


@user_app.command("revoke")
@fail_cleanly
def user_revoke(store: StoreArg, user_id: Annotated[str, typer.Argument(help="The user.")]) -> None:
    """Stop a user's token from working (running servers: within 5 seconds)."""
    with open_arg(store) as s:
        s.revoke_user(user_id)
    out.print(tr("token_revoked", user=user_id))
