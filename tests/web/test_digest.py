"""The guardian digest against a real SMTP server on loopback (aiosmtpd): a fixed message,
one per active reader per day, nothing lost while the server is down, sent once even when
two hosts run the job at the same moment."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import smtplib
import socket
import threading
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select

from speakup.accounts.lifecycle import disable_account
from speakup.accounts.models import Role
from speakup.extensions import db
from speakup.jobs.cli import jobs_cli
from speakup.jobs.models import DigestDelivery

#: the real constructor, saved before conftest's autouse guard replaces it for each test
ORIGINAL_SMTP_INIT = smtplib.SMTP.__init__

SUBJECT = "Speakup: please sign in to check your cases"
BASE_URL = "https://speakup.example.test"
BODY = (
    "Hello,\n\n"
    "This is your regular reminder from Speakup. Please sign in to check your cases:\n"
    f"{BASE_URL}/staff/sign-in\n\n"
    "This message is sent to every guardian and panel member on the same schedule. It never "
    "says whether you have new cases.\n"
)
CANARY = "zq_digest_canary the theatre lead mocked my accent"
TO_HEADER = re.compile(rb"^To: [^\r\n]*\r?\n", re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Collector:
    """An aiosmtpd handler that keeps every accepted message, and can refuse or stall."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.refuse: set[str] = set()
        self.delay = 0.0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.delay:
            await asyncio.sleep(self.delay)
        self.messages.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 Message accepted for delivery"

    def recipients(self) -> list[str]:
        return sorted(to for tos, _ in self.messages for to in tos)


class MailServer:
    """A loopback SMTP server on a fixed port that a test can start (and stop) at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.handler = Collector()
        self.controller: Controller | None = None

    def start(self, **smtp_options) -> None:
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, **smtp_options
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp(monkeypatch):
    """A mail server (not yet started). Only this loopback server is ever talked to."""
    monkeypatch.setattr(smtplib.SMTP, "__init__", ORIGINAL_SMTP_INIT)
    server = MailServer()
    yield server
    server.stop()


@pytest.fixture
def mail_app(app, make_app, smtp):
    """An app configured (as in production, by config) to send through the test server."""
    application = make_app(MAIL_HOST="127.0.0.1", MAIL_PORT=smtp.port, MAIL_BASE_URL=BASE_URL)
    with application.app_context():
        yield application


@pytest.fixture
def run(mail_app):
    runner = mail_app.test_cli_runner()

    def invoke(*args):
        result = runner.invoke(args=["jobs", *args])
        db.session.rollback()
        db.session.expire_all()
        return result

    return invoke


@pytest.fixture
def people(mail_app, make_org, make_staff, submit):
    """Readers with five cases, with none, a lead, a panel member; an admin and a disabled
    guardian who must get nothing."""
    busy_org, quiet_org = make_org("BUSY"), make_org("QUIET")
    busy = make_staff(Role.GUARDIAN, busy_org)
    lead = make_staff(Role.LEAD_GUARDIAN, busy_org)
    idle = make_staff(Role.GUARDIAN, quiet_org)
    panel = make_staff(Role.PANEL_MEMBER)
    admin = make_staff(Role.ADMIN)
    gone = make_staff(Role.GUARDIAN, quiet_org)
    disable_account(gone.user, by=None)
    references = [submit(busy_org, what_happened=CANARY).case.reference for _ in range(5)]
    db.session.commit()
    return {
        "readers": sorted(s.user.email for s in (busy, lead, idle, panel)),
        "busy": busy.user.email,
        "idle": idle.user.email,
        "admin": admin.user.email,
        "gone": gone.user.email,
        "references": references,
    }


def deliveries() -> list[DigestDelivery]:
    return list(db.session.scalars(select(DigestDelivery).order_by(DigestDelivery.id)))


def message_for(smtp, address: str) -> bytes:
    [raw] = [raw for tos, raw in smtp.handler.messages if tos == [address]]
    return raw


def test_one_fixed_message_per_active_reader(smtp, run, people):
    smtp.start()
    result = run("digest")
    assert result.exit_code == 0, result.output
    assert "digest: queued 4, sent 4, still pending 0" in result.output

    assert smtp.handler.recipients() == people["readers"]
    assert all(len(tos) == 1 for tos, _ in smtp.handler.messages)
    busy, idle = message_for(smtp, people["busy"]), message_for(smtp, people["idle"])
    # Five cases or none: the same bytes apart from the address.
    assert TO_HEADER.sub(b"", busy) == TO_HEADER.sub(b"", idle)
    assert len({TO_HEADER.sub(b"", raw) for _, raw in smtp.handler.messages}) == 1
    for tos, raw in smtp.handler.messages:
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["Subject"] == SUBJECT
        assert parsed["To"] == tos[0]
        assert parsed["From"] == "speakup@localhost"
        assert parsed.get_content().replace("\r\n", "\n") == BODY
        text = raw.decode()
        assert CANARY not in text
        assert not any(ref in text for ref in people["references"])
        assert not re.search(r"\b5\b", text)  # no counts of any kind
    rows = deliveries()
    assert len(rows) == 4 and all(r.sent_at is not None and r.attempts == 1 for r in rows)


def test_running_twice_a_day_sends_nothing_new_and_the_next_day_sends_again(
    smtp, run, people, time_machine
):
    time_machine.move_to(datetime(2026, 11, 26, 7, 0, tzinfo=UTC), tick=True)
    smtp.start()
    assert run("digest").exit_code == 0
    time_machine.shift(timedelta(hours=10))
    again = run("digest")
    assert again.exit_code == 0 and "queued 0, sent 0, still pending 0" in again.output
    assert len(smtp.handler.messages) == 4

    time_machine.shift(timedelta(days=1))
    tomorrow = run("digest")
    assert "queued 4, sent 4" in tomorrow.output
    assert smtp.handler.recipients() == sorted(people["readers"] * 2)
    assert {r.period for r in deliveries()} == {"2026-11-26", "2026-11-27"}


def test_nothing_is_lost_while_the_mail_server_is_down(smtp, run, people):
    down = run("digest")  # nothing listens on the configured port yet
    assert down.exit_code == 75, down.output
    assert "queued 4, sent 0, still pending 4" in down.output
    rows = deliveries()
    assert len(rows) == 4 and all(r.sent_at is None and r.attempts == 1 for r in rows)

    still_down = run("digest")
    assert still_down.exit_code == 75 and "queued 0, sent 0, still pending 4" in still_down.output
    assert all(r.sent_at is None and r.attempts == 2 for r in deliveries())

    smtp.start()
    back = run("digest")
    assert back.exit_code == 0, back.output
    assert "queued 0, sent 4, still pending 0" in back.output
    assert smtp.handler.recipients() == people["readers"]
    assert all(r.sent_at is not None and r.attempts == 3 for r in deliveries())
    assert run("digest").exit_code == 0
    assert len(smtp.handler.messages) == 4


def test_a_refused_message_is_retried_without_resending_the_others(smtp, run, people):
    smtp.start()
    smtp.handler.refuse.add(people["idle"])
    first = run("digest")
    assert first.exit_code == 75
    assert "queued 4, sent 3, still pending 1" in first.output
    assert people["idle"] not in smtp.handler.recipients()

    smtp.handler.refuse.clear()
    second = run("digest")
    assert second.exit_code == 0 and "queued 0, sent 1, still pending 0" in second.output
    assert smtp.handler.recipients() == people["readers"]


def test_a_pending_digest_of_a_since_disabled_reader_is_dropped(smtp, run, people):
    run("digest")  # server down: four pending
    from speakup.accounts.services import find_user

    disable_account(find_user(people["idle"]), by=None)
    db.session.commit()
    smtp.start()
    result = run("digest")
    assert result.exit_code == 0 and "sent 3, still pending 0" in result.output
    assert people["idle"] not in smtp.handler.recipients()


@pytest.mark.parametrize("password", ["digest password", "wrong password"])
def test_the_smtp_login_comes_from_configuration_and_the_environment(
    smtp, mail_app, run, people, monkeypatch, password
):
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        ok = (auth_data.login, auth_data.password) == (b"speakup-digest", b"digest password")
        return AuthResult(success=ok)

    smtp.start(authenticator=authenticator, auth_require_tls=False)
    mail_app.config["MAIL_USERNAME"] = "speakup-digest"
    mail_app.config["MAIL_TIMEOUT_SECONDS"] = 2  # aiosmtpd stalls after a refused login
    monkeypatch.setenv("SPEAKUP_MAIL_PASSWORD", password)
    result = run("digest")
    assert logins == [(b"speakup-digest", password.encode())]
    if password == "digest password":
        assert result.exit_code == 0 and smtp.handler.recipients() == people["readers"]
    else:
        # Refused: nothing is sent, nothing is lost, and the run does not report success.
        assert result.exit_code != 0 and smtp.handler.messages == []
        assert all(r.sent_at is None for r in deliveries()) and len(deliveries()) == 4


def run_in_thread(app, name: str, start: threading.Barrier, outcomes: list) -> None:
    """Invoke the real job command in this thread's own app context, like a second host."""
    command = jobs_cli.get_command(None, name)  # type: ignore[arg-type]
    with app.app_context():
        start.wait()
        try:
            command.main(args=[], prog_name=f"jobs {name}", standalone_mode=False)
            outcomes.append(0)
        except SystemExit as exit_:
            outcomes.append(exit_.code)
        except BaseException as exc:  # surfaced by the test, not lost in the thread
            outcomes.append(exc)
        finally:
            db.session.remove()


def test_two_hosts_at_once_send_each_message_once(smtp, mail_app, run, people, capsys):
    smtp.start()
    smtp.handler.delay = 0.2  # a slow server keeps the first run busy
    db.session.commit()
    db.session.remove()
    start = threading.Barrier(2)
    outcomes: list = []
    threads = [
        threading.Thread(target=run_in_thread, args=(mail_app, "digest", start, outcomes))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes == [0, 0], outcomes
    assert smtp.handler.recipients() == people["readers"]
    rows = deliveries()
    assert len(rows) == 4 and all(r.sent_at is not None and r.attempts == 1 for r in rows)
    out = capsys.readouterr().out
    assert out.count("queued 4, sent 4") == 1
    assert out.count("digest: another host is running it; nothing to do") == 1, out


def send_in_thread(app, start: threading.Barrier, outcomes: list) -> None:
    """``send_pending`` in this thread's own app context and connection, with no lease at all:
    what happens when a second host's run overlaps the first (a lease stolen or expired)."""
    from speakup.jobs.digest import send_pending

    with app.app_context():
        start.wait()
        try:
            outcomes.append(send_pending(app.config))
        except BaseException as exc:
            outcomes.append(exc)
        finally:
            db.session.remove()


def test_two_runs_that_overlap_without_a_lease_send_each_message_once(smtp, mail_app, people):
    from speakup.db import utcnow
    from speakup.jobs.digest import queue_digests

    smtp.start()
    smtp.handler.delay = 0.2  # slow: both runs are sending at the same time
    assert queue_digests(utcnow()) == 4
    db.session.remove()
    start = threading.Barrier(2)
    outcomes: list = []
    threads = [
        threading.Thread(target=send_in_thread, args=(mail_app, start, outcomes)) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(isinstance(o, tuple) for o in outcomes), outcomes
    assert sum(sent for sent, _ in outcomes) == 4 and all(f == 0 for _, f in outcomes)
    # Each guardian exactly one message, though both runs went through every row.
    assert smtp.handler.recipients() == people["readers"]
    rows = deliveries()
    assert all(r.sent_at is not None and r.attempts == 1 and r.claimed_by is None for r in rows)


def test_a_claim_left_by_a_dead_run_runs_out_and_is_sent_later(smtp, run, people):
    from sqlalchemy import update

    from speakup.jobs.leases import db_now

    smtp.start()
    assert run("digest").exit_code == 0
    smtp.handler.messages.clear()
    # Tomorrow's rows: one was claimed by a host that died mid-send, one claim still live.
    rows = deliveries()
    db.session.execute(update(DigestDelivery).values(sent_at=None))
    db.session.execute(
        update(DigestDelivery)
        .where(DigestDelivery.id == rows[0].id)
        .values(claimed_by="dead-host", claimed_until=db_now(-1))
    )
    db.session.execute(
        update(DigestDelivery)
        .where(DigestDelivery.id == rows[1].id)
        .values(claimed_by="busy-host", claimed_until=db_now(300))
    )
    db.session.commit()
    result = run("digest")
    assert "sent 3, still pending 0" in result.output
    assert len(smtp.handler.messages) == 3  # the live claim's row is left to its holder
