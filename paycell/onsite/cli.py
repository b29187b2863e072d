"""``paycell onsite ...``: cards, terminals, e-cash clearing, OTA jobs."""

from __future__ import annotations

import typer

onsite_app = typer.Typer(help="On-site payment: NFC SIM cards, POS terminals, transit "
                         "e-cash, OTA.", no_args_is_help=True)

# NFC SIM cards (docs/onsite.md, "Cards and cryptography")
from paycell.onsite import cards_cli  # noqa: E402

onsite_app.command("issue-card")(cards_cli.issue_card)
onsite_app.command("cards")(cards_cli.list_cards)
onsite_app.command("report-lost")(cards_cli.report_lost)

# POS terminals (docs/onsite.md, "POS terminals and online authorisation")
from paycell.onsite import terminals_cli  # noqa: E402

onsite_app.command("register-terminal")(terminals_cli.register_terminal)
onsite_app.command("terminals")(terminals_cli.list_terminals)
onsite_app.command("batch-totals")(terminals_cli.batch_totals)

# OTA and transit e-cash (docs/onsite.md, "OTA", "Transit e-cash")
from paycell.onsite import ota_cli  # noqa: E402

onsite_app.command("ota-jobs")(ota_cli.ota_jobs)
onsite_app.command("ota-queue")(ota_cli.ota_queue)
onsite_app.command("ota-send")(ota_cli.ota_send)
onsite_app.command("hot-list")(ota_cli.hot_list)
