"""`forecourt tokens`: create, list and revoke API bearer tokens."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.table import Table

from crawler.cli.common import console, database, say
from crawler.cli.render import moment
from crawler.db import dealers as dealers_db
from crawler.db import tokens as tokens_db
from crawler.durations import parse_duration
from crawler.errors import InvalidInput
from crawler.models import ApiToken


def register(app: typer.Typer) -> None:
    tokens_app = typer.Typer(help="API bearer tokens: create, list, revoke.",
                             no_args_is_help=True)
    app.add_typer(tokens_app, name="tokens")

    @tokens_app.command("create")
    def create(
        dealer: str | None = typer.Option(None, "--dealer", help="Slug of the one dealership "
                                          "the token may see and act on."),
        operator: bool = typer.Option(False, "--operator", help="A token that sees every "
                                      "dealership."),
        label: str | None = typer.Option(None, "--label", help="A note: who or what uses it."),
        expires_in: str | None = typer.Option(None, "--expires-in", help="Stop working this "
                                              "long from now: 12h, 30d, 90d, 2w (m, h, d, w). "
                                              "Without it the token never expires."),
    ) -> None:
        """Create a token; it is printed once and only its hash is stored."""
        if bool(dealer) == operator:
            raise InvalidInput("give exactly one of --dealer <slug> or --operator",
                               hint="e.g. `forecourt tokens create --dealer acme-motors`")
        span = parse_duration(expires_in, "--expires-in") if expires_in is not None else None
        with database() as conn:
            dealership_id = dealers_db.get(conn, dealer).id if dealer else None
            record, token = tokens_db.create(conn, "dealer" if dealer else "operator",
                                             dealership_id, label, span)
        scope = f"dealership {dealer}" if dealer else "every dealership (operator)"
        until = f"expires {moment(record.expires_at)} UTC" if record.expires_at else \
            "never expires"
        say(f"created token {record.id} for {scope} ({until}); store it now, it is not "
            "shown again:")
        say(token)

    @tokens_app.command("list")
    def list_cmd(
        active: bool = typer.Option(False, "--active", help="Only tokens that work: "
                                    "neither revoked nor expired."),
    ) -> None:
        """List tokens (never the tokens themselves): scope, use, expiry and revocation."""
        with database() as conn:
            rows = tokens_db.list_all(conn, include_revoked=not active)
        table = Table(title=f"{len(rows)} token(s)")
        for col in ("id", "prefix", "role", "dealership", "label", "created", "last used",
                    "expires", "revoked"):
            table.add_column(col)
        now = datetime.now(UTC)
        for t in rows:
            table.add_row(str(t.id), t.prefix, t.role, t.dealership_slug or "*",
                          t.label or "-", moment(t.created_at), moment(t.last_used_at),
                          _expiry(t, now), moment(t.revoked_at))
        console.print(table)

    @tokens_app.command("revoke")
    def revoke(token_id: int = typer.Argument(..., help="The token's id (see `forecourt "
                                              "tokens list`).")) -> None:
        """Revoke a token: it stops working at once."""
        with database() as conn:
            record = tokens_db.revoke(conn, token_id)
        say(f"revoked token {record.id} ({record.prefix}) at "
            f"{moment(record.revoked_at)}")


def _expiry(token: ApiToken, now: datetime) -> str:
    """When the token expires ("never"), marked "expired" once it has."""
    if token.expires_at is None:
        return "never"
    return moment(token.expires_at) + (" expired" if token.expired(now) else "")
