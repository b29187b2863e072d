"""``paycell sms smsc`` (run the loopback SMSC) and ``paycell sms receive`` (a subscriber's
text, as if received). Registered on the ``sms`` command group by ``subscribers/cli.py``."""

from __future__ import annotations

import sys
import threading

import typer
from rich.markup import escape

from paycell.clikit import UrlOpt
from paycell.clikit import cli_context as _context
from paycell.console import console


def register(app: typer.Typer) -> None:
    app.command("smsc")(smsc)
    app.command("receive")(receive)


def smsc(
    port: int = typer.Option(2775, "--port", help="TCP port to listen on (0: any free one)"),
    host: str = typer.Option("127.0.0.1", "--host"),
    system_id: str | None = typer.Option(None, "--system-id",
                                         help="defaults to PAYCELL_SMPP_SYSTEM_ID"),
    password: str | None = typer.Option(None, "--password",
                                        help="defaults to PAYCELL_SMPP_PASSWORD"),
    outcome: list[str] = typer.Option(
        [], "--outcome", help="MSISDN=STAT: the receipt for that number (UNDELIV, EXPIRED, "
        "REJECTD...) or MSISDN=reject to refuse its texts; repeatable"),
) -> None:
    """Run the loopback SMSC (a real SMPP 3.4 server) in the foreground.

    Point paycell at it with PAYCELL_SMS_BACKEND=smpp (and PAYCELL_SMPP_PORT). Texts it
    receives are printed; type `MSISDN TEXT` lines to send texts to paycell as that
    subscriber. Ctrl-C stops it.
    """
    from paycell.config import get_settings
    from paycell.gateways.smsc_sim import SmscSim, Text

    settings = get_settings()
    sim = SmscSim(host=host, port=port, system_id=system_id or settings.smpp_system_id,
                  password=settings.smpp_password if password is None else password)
    for item in outcome:
        number, _, stat = item.partition("=")
        sim.outcomes[number.strip()] = stat.strip() if stat.strip() == "reject" else \
            stat.strip().upper()

    def show(text: Text) -> None:
        console.print(f"[bold]→ {text.msisdn}[/] ({len(text.message_ids)} part(s), "
                      f"data_coding {text.data_coding}): {escape(text.text)}")

    sim.on_text = show
    sim.start()
    console.print(f"loopback SMSC on {host}:{sim.port}, system_id {sim.system_id!r}; "
                  "type `MSISDN TEXT` to send a text to paycell, Ctrl-C to stop")
    try:
        if sys.stdin is not None and sys.stdin.isatty():
            for line in sys.stdin:
                number, _, body = line.strip().partition(" ")
                if not number or not body:
                    console.print("type: MSISDN TEXT")
                elif sim.inject_mo(number, body):
                    console.print(f"[green]← {number}[/]: {escape(body)}")
                else:
                    console.print("[red]not delivered[/]: no client bound (or it refused)")
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


def receive(
    msisdn: str = typer.Argument(..., help="the subscriber's number"),
    text: str = typer.Argument(..., help="what they texted"),
    database_url: str | None = UrlOpt,
) -> None:
    """Development: act on TEXT as if MSISDN had texted it (records it, runs the SMS
    commands, prints the replies)."""
    from paycell.gateways.sms import list_messages, record_inbound
    from paycell.payments import sms_commands
    from paycell.subscribers.service import normalise_msisdn

    with _context(database_url) as ctx:
        number = normalise_msisdn(msisdn)
        before = record_inbound(ctx.engine, ctx.clock, number, text)
        try:
            sms_commands.handle_inbound(ctx, number, text)
        finally:
            ctx.close()
        replies = [m for m in list_messages(ctx.engine, number, limit=20, direction="out")
                   if m.id > before]
        if not replies:
            console.print(f"no reply to {number}")
        for m in reversed(replies):
            console.print(f"[bold]→ {number}[/] ({m.status}): {escape(m.body)}")
