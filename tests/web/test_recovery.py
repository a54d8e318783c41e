"""Recovery after a lost password: an administrator's reset destroys the guardian's key and
gives a one-time enrolment code (the administrator never knows a password); the guardian's
case access waits as pending grants, restored only explicitly — by a reader of the case who
chooses to, or by the recovery custodian with the organisation's offline recovery key."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import func, select

from speakup.accounts.models import AuthSession, Role
from speakup.audit.models import AuditEvent
from speakup.cases.models import CaseKey, DisclosureMode, KeyType, PendingGrant, RecipientKind
from speakup.extensions import db
from speakup.organisations.models import Organisation
from tests.conftest import PASSWORD

NEW_PASSWORD = "my own new password 4 me"
CODE = re.compile(r'id="enrolment-code">([^<]+)<')
CANARY = "zq_recovery_canary the ward manager shouted at me again"
NAME = "Zq Recovery Reporter"
SECRET = re.compile(r'id="totp-secret">([A-Z2-7]+)<')


def page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def pending(user) -> set[tuple[int, str]]:
    return set(
        db.session.execute(
            select(PendingGrant.case_id, PendingGrant.key_type).where(
                PendingGrant.user_id == user.id
            )
        ).all()
    )


def held(user) -> set[tuple[int, str]]:
    return set(
        db.session.execute(
            select(CaseKey.case_id, CaseKey.key_type).where(
                CaseKey.recipient_kind == str(RecipientKind.USER), CaseKey.user_id == user.id
            )
        ).all()
    )


def events(action: str) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
        )
    )


@pytest.fixture
def org(make_org, tmp_path):
    return make_org("RRK", recovery_dir=tmp_path)


@pytest.fixture
def key_file(tmp_path):
    return tmp_path / "RRK.json"


@pytest.fixture
def g1(make_staff, org):
    return make_staff(Role.GUARDIAN, org, name="Guardian One")


@pytest.fixture
def g2(make_staff, org):
    return make_staff(Role.GUARDIAN, org, name="Guardian Two")


@pytest.fixture
def report(submit, org, g1, g2):
    """A confidential report sealed to both guardians (data key and identity key)."""
    return submit(
        org,
        what_happened=CANARY,
        disclosure_mode=DisclosureMode.CONFIDENTIAL,
        name=NAME,
        contact="07700 900123",
    )


def reset(how: str, staff, cli, admin_client) -> str:
    """An administrator's reset, by the CLI or the admin page; returns the enrolment code."""
    if how == "cli":
        result = cli("user", "reset", staff.user.email)
        assert result.exit_code == 0, result.output
        assert f"reset {staff.user.email}: " in result.output
        assert "case key(s) waiting to be restored" in result.output
        code = result.output.rsplit(": ", 1)[1].strip()
    else:
        confirm = admin_client.get(f"/staff/admin/users/{staff.user.id}/reset")
        assert confirm.status_code == 200 and 'type="password"' not in page(confirm)
        response = admin_client.post(f"/staff/admin/users/{staff.user.id}/reset")
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        assert "account was reset" in page(response)
        code = CODE.search(page(response)).group(1)
    db.session.expire_all()
    staff.code_given = code
    return code


def enrol(app, staff, password: str = NEW_PASSWORD):
    """After a reset: the enrolment code and one's own password, then TOTP enrolment."""
    client = app.test_client()
    response = client.post(
        "/staff/enrol",
        data={
            "email": staff.user.email,
            "code": staff.code_given,
            "password": password,
            "confirm": password,
        },
    )
    assert response.status_code == 302, page(response)[:500]
    second = client.get("/staff/sign-in/code")
    assert "Set up your security code" in page(second)
    secret = SECRET.search(second.get_data(as_text=True)).group(1)
    assert secret != staff.totp_secret  # a new enrolment, not the old secret
    response = client.post("/staff/sign-in/code", data={"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302 and response.location.endswith("/staff/cases/")
    staff.totp_secret = secret
    staff.password = password
    db.session.expire_all()
    return client


def restore_as(client, case, target):
    """A reader of the case presses "Restore …'s access"."""
    return client.post(
        f"/staff/cases/{case.reference}/readers/restore", data={"user_id": str(target.user.id)}
    )


def restore(cli, org_code: str, key_file, *extra: str):
    return cli("recovery", "restore", org_code, "--key-file", str(key_file), *extra)


def assert_reads(client, case, *texts: str) -> None:
    response = client.get(f"/staff/cases/{case.reference}")
    assert response.status_code == 200, page(response)[:500]
    for text in (CANARY, *texts):
        assert text in page(response)


# The reset itself --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["cli", "web"])
def test_a_reset_guardian_loses_access_until_it_is_restored(
    how, app, org, g1, g2, report, make_staff, staff_client, cli
):
    case = report.case
    old_client = staff_client(g1)
    assert_reads(old_client, case, NAME)
    old_public = g1.user.public_key.key_id
    admin_client = staff_client(make_staff(Role.ADMIN)) if how == "web" else None

    reset(how, g1, cli, admin_client)

    assert g1.user.enrolment_pending and g1.user.wrapped_private_key == b""
    assert g1.user.totp_wrapped is None
    assert pending(g1.user) == {(case.id, "dek"), (case.id, "idk")}
    assert held(g1.user) == set()
    assert (
        db.session.scalar(
            select(func.count()).select_from(AuthSession).where(AuthSession.user_id == g1.user.id)
        )
        == 0
    )
    # The session from before the reset is gone at once.
    assert old_client.get(f"/staff/cases/{case.reference}").location.endswith("/staff/sign-in")
    # The old password opens nothing now.
    stale = app.test_client().post(
        "/staff/sign-in", data={"email": g1.user.email, "password": PASSWORD}
    )
    assert stale.status_code == 400
    [event] = events("user.reset")
    assert event.detail == f"user={g1.user.id} pending=2"
    assert event.actor_kind == ("system" if how == "cli" else "user")

    client = enrol(app, g1)
    assert g1.user.public_key.key_id != old_public
    assert client.get(f"/staff/cases/{case.reference}").status_code == 404
    inbox = page(client.get("/staff/cases/"))
    assert f'href="/staff/cases/{case.reference}"' not in inbox  # not in her list of cases
    # She is told what waits, at her first sign-in.
    assert f"your access to 1 case is waiting to be restored: {case.reference}." in inbox
    assert pending(g1.user) == {(case.id, "dek"), (case.id, "idk")}


def test_an_enrolment_code_works_once_and_only_for_its_account(app, org, g1, g2, cli):
    code = reset("cli", g1, cli, None)
    for email, typed in ((g2.user.email, code), (g1.user.email, "ABCD-EFGH-JKMN-PQRS-TVWX")):
        refused = app.test_client().post(
            "/staff/enrol",
            data={"email": email, "code": typed, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
        )
        assert refused.status_code == 400
        assert "enrolment code is not right" in page(refused)
    # Capitals, spaces and dashes do not matter.
    g1.code_given = code.lower().replace("-", " ")
    enrol(app, g1)
    assert g1.user.enrolment_code_hash is None
    g1.code_given = code
    again = app.test_client().post(
        "/staff/enrol",
        data={"email": g1.user.email, "code": code, "password": "x" * 20, "confirm": "x" * 20},
    )
    assert again.status_code == 400


def test_an_enrolment_code_expires(app, org, g1, cli, time_machine):
    time_machine.move_to(datetime.now(UTC), tick=False)
    reset("cli", g1, cli, None)
    time_machine.shift(timedelta(hours=int(app.config["AUTH_ENROLMENT_CODE_HOURS"]), seconds=1))
    expired = app.test_client().post(
        "/staff/enrol",
        data={
            "email": g1.user.email,
            "code": g1.code_given,
            "password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
        },
    )
    assert expired.status_code == 400 and "has expired" in page(expired)


# Route 1: a reader of the case restores it, explicitly ----------------------------------------


@pytest.mark.parametrize("how", ["cli", "web"])
def test_a_reader_restores_access_explicitly_and_nothing_happens_by_itself(
    how, app, org, g1, g2, report, make_staff, staff_client, cli
):
    case = report.case
    reset(how, g1, cli, staff_client(make_staff(Role.ADMIN)) if how == "web" else None)
    g2_client = staff_client(g2)  # signing in restores nothing by itself
    db.session.expire_all()
    assert held(g1.user) == set() and pending(g1.user) == {(case.id, "dek"), (case.id, "idk")}
    # Before she has set up her account again, there is nothing to restore to.
    waiting = page(g2_client.get(f"/staff/cases/{case.reference}"))
    assert "Guardian One’s account was reset" in waiting and "Restore Guardian One" not in waiting
    early = restore_as(g2_client, case, g1)
    assert early.status_code == 400 and "has not finished setting up" in page(early)

    g1_client = enrol(app, g1)
    assert g1_client.get(f"/staff/cases/{case.reference}").status_code == 404
    db.session.expire_all()
    assert held(g1.user) == set()  # still nothing automatic
    prompt = page(g2_client.get(f"/staff/cases/{case.reference}"))
    assert "Guardian One’s access was reset. Restore it?" in prompt
    done = restore_as(g2_client, case, g1)
    assert done.status_code == 302, page(done)[:500]

    db.session.expire_all()
    assert pending(g1.user) == set()
    assert held(g1.user) == {(case.id, "dek"), (case.id, "idk")}
    restored = events("case.access_restored")
    assert {e.detail for e in restored} == {
        f"user={g1.user.id} key=dek",
        f"user={g1.user.id} key=idk",
    }
    assert all(e.actor_user_id == g2.user.id and e.case_id == case.id for e in restored)
    # G1's existing session reads the case, including who the reporter is.
    assert_reads(g1_client, case, NAME)

    # New messages both ways reach G1 too.
    reporter = app.test_client()
    assert reporter.post("/follow-up", data={"receipt": report.receipt}).status_code == 302
    reporter_words = "zq_recovery_after the reset it happened once more"
    sent = reporter.post("/follow-up/case/messages", data={"body": reporter_words})
    assert sent.status_code == 302
    assert_reads(g1_client, case, reporter_words)
    reply_words = "zq_recovery_reply thank you, I am looking at it"
    reply = g1_client.post(f"/staff/cases/{case.reference}/messages", data={"body": reply_words})
    assert reply.status_code == 302
    assert reply_words in page(g2_client.get(f"/staff/cases/{case.reference}"))
    assert reply_words in page(reporter.get("/follow-up/case"))


def test_only_a_reader_of_the_case_can_restore_it(
    app, org, g1, g2, make_org, make_staff, submit, staff_client, cli
):
    """A guardian of another organisation holds nothing of G1's case: they cannot restore
    it (the case is a 404 to them), and signing in restores nothing."""
    other = make_org("OTHER")
    g3 = make_staff(Role.GUARDIAN, other)
    own = submit(org, what_happened=CANARY).case
    reset("cli", g1, cli, None)
    enrol(app, g1)
    assert restore_as(staff_client(g3), own, g1).status_code == 404
    db.session.expire_all()
    assert pending(g1.user) == {(own.id, "dek")} and held(g1.user) == set()
    assert restore_as(staff_client(g2), own, g1).status_code == 302
    db.session.expire_all()
    assert pending(g1.user) == set() and held(g1.user) == {(own.id, "dek")}


# Route 2: the recovery custodian ---------------------------------------------------------------


@pytest.mark.parametrize("other_reader", ["disabled", "absent"])
@pytest.mark.parametrize("only_g1", [True, False])
def test_the_custodian_restores_access_with_the_recovery_key(
    other_reader, only_g1, app, org, key_file, make_staff, submit, staff_client, cli
):
    g1 = make_staff(Role.GUARDIAN, org, name="Guardian One")
    g2 = make_staff(Role.GUARDIAN, org, name="Guardian Two") if other_reader == "disabled" else None
    case = submit(
        org,
        what_happened=CANARY,
        disclosure_mode=DisclosureMode.CONFIDENTIAL,
        name=NAME,
        contact="07700 900123",
    ).case
    if g2 is not None:
        assert cli("user", "disable", g2.user.email).exit_code == 0
    reset("cli", g1, cli, None)
    g1_client = enrol(app, g1)
    assert g1_client.get(f"/staff/cases/{case.reference}").status_code == 404
    # Nobody else can restore it: the grants wait.
    assert pending(g1.user) == {(case.id, "dek"), (case.id, "idk")}

    extra = ("--user", g1.user.email) if only_g1 else ()
    result = restore(cli, "RRK", key_file, *extra)
    assert result.exit_code == 0, result.output
    assert "restored 2 case key(s) for RRK" in result.output

    db.session.expire_all()
    assert pending(g1.user) == set()
    assert held(g1.user) == {(case.id, "dek"), (case.id, "idk")}
    restored = events("case.access_restored")
    assert {e.detail for e in restored} == {
        f"user={g1.user.id} key=dek via=recovery",
        f"user={g1.user.id} key=idk via=recovery",
    }
    assert all(e.actor_kind == "system" and CANARY not in e.detail for e in restored)
    assert_reads(g1_client, case, NAME)
    # Running it again finds nothing left to do.
    again = restore(cli, "RRK", key_file, *extra)
    assert again.exit_code == 0 and "restored 0 case key(s)" in again.output


def test_restoring_one_user_leaves_the_others_waiting(
    app, org, key_file, g1, g2, report, make_staff, cli
):
    case = report.case
    reset("cli", g1, cli, None)
    reset("cli", g2, cli, None)
    g1_client = enrol(app, g1)
    enrol(app, g2)
    result = restore(cli, "RRK", key_file, "--user", g1.user.email)
    assert result.exit_code == 0 and "restored 2" in result.output
    db.session.expire_all()
    assert held(g1.user) == {(case.id, "dek"), (case.id, "idk")}
    assert pending(g2.user) == {(case.id, "dek"), (case.id, "idk")}
    assert_reads(g1_client, case, NAME)


def test_the_custodian_waits_until_the_guardian_has_set_up_her_account(
    app, org, key_file, g1, g2, report, cli
):
    reset("cli", g1, cli, None)
    early = restore(cli, "RRK", key_file)
    assert early.exit_code == 0 and "restored 0 case key(s)" in early.output
    db.session.expire_all()
    assert pending(g1.user) == {(report.case.id, "dek"), (report.case.id, "idk")}
    client = enrol(app, g1)
    assert restore(cli, "RRK", key_file).exit_code == 0
    assert_reads(client, report.case, NAME)


def test_the_key_file_is_checked_before_anything_happens(
    app, org, key_file, g1, g2, report, make_org, tmp_path, cli
):
    make_org("OTHER", recovery_dir=tmp_path)
    reset("cli", g1, cli, None)
    expected = {(report.case.id, "dek"), (report.case.id, "idk")}

    wrong_org = restore(cli, "RRK", tmp_path / "OTHER.json")
    assert wrong_org.exit_code == 1
    assert "That file is not this organisation's recovery key." in wrong_org.output
    swapped = restore(cli, "OTHER", key_file)
    assert swapped.exit_code == 1
    assert "That file is not this organisation's recovery key." in swapped.output

    unknown_org = restore(cli, "NOPE", key_file)
    assert (
        unknown_org.exit_code == 1 and "No organisation has the code 'NOPE'" in unknown_org.output
    )
    unknown_user = restore(cli, "RRK", key_file, "--user", "nobody@example.test")
    assert unknown_user.exit_code == 1 and "No account nobody@example.test." in unknown_user.output

    db.session.expire_all()
    assert pending(g1.user) == expected and held(g1.user) == set()
    assert events("case.access_restored") == []


def test_a_replaced_recovery_key_is_refused(app, org, key_file, g1, g2, report, tmp_path, cli):
    replaced = cli("org", "recovery-key", "RRK", "--out", str(tmp_path / "new.json"), "--replace")
    assert replaced.exit_code == 0, replaced.output
    reset("cli", g1, cli, None)

    result = restore(cli, "RRK", key_file)
    assert result.exit_code == 1
    assert "That recovery key does not match the organisation's current key." in result.output
    db.session.expire_all()
    assert pending(g1.user) == {(report.case.id, "dek"), (report.case.id, "idk")}
    assert events("case.access_restored") == []


@pytest.mark.parametrize("history", ["replaced", "created_later"])
def test_cases_sealed_before_the_current_recovery_key_stay_recoverable(
    history, app, make_org, make_staff, submit, tmp_path, staff_client, cli
):
    """A recovery key replaced (the old file lost or exposed) or first generated after cases
    arrived must still cover those cases: once a reader of each case has signed in, its
    recovery copies are sealed to the current key, and a replaced key opens none of them."""
    org = make_org("RRK", recovery_dir=tmp_path if history == "replaced" else None)
    g1 = make_staff(Role.GUARDIAN, org, name="Guardian One")
    g2 = make_staff(Role.GUARDIAN, org, name="Guardian Two")
    case = submit(
        org,
        what_happened=CANARY,
        disclosure_mode=DisclosureMode.CONFIDENTIAL,
        name=NAME,
        contact="07700 900123",
    ).case
    old = db.session.get(Organisation, org.id).recovery_public_key
    new_file = tmp_path / "current.json"
    options = ("--replace",) if history == "replaced" else ()
    generated = cli("org", "recovery-key", "RRK", "--out", str(new_file), *options)
    assert generated.exit_code == 0, generated.output
    staff_client(g2)  # a reader of the case signs in after the new key exists

    db.session.expire_all()
    current_id = db.session.get(Organisation, org.id).recovery_public_key.key_id
    recovery_copies = db.session.scalars(
        select(CaseKey).where(
            CaseKey.case_id == case.id, CaseKey.recipient_kind == str(RecipientKind.RECOVERY)
        )
    ).all()
    assert sorted(row.key_type for row in recovery_copies) == [str(KeyType.DEK), str(KeyType.IDK)]
    assert {row.recipient_key_id for row in recovery_copies} == {current_id}
    assert old is None or old.key_id != current_id

    assert cli("user", "disable", g2.user.email).exit_code == 0
    reset("cli", g1, cli, None)
    g1_client = enrol(app, g1)
    result = restore(cli, "RRK", new_file)
    assert result.exit_code == 0 and "restored 2 case key(s)" in result.output
    assert_reads(g1_client, case, NAME)


# Exclusions hold through every route -----------------------------------------------------------


def test_an_excluded_guardian_never_gets_the_case_back(
    app, org, key_file, g1, g2, submit, staff_client, cli
):
    readable = submit(org, what_happened=CANARY).case
    about_g1 = submit(
        org, what_happened="zq_excluded_canary it is about G1", excluded_guardian_ids=[g1.user.id]
    ).case
    assert (about_g1.id, "dek") not in held(g1.user)
    reset("cli", g1, cli, None)
    assert pending(g1.user) == {(readable.id, "dek")}
    g1_client = enrol(app, g1)
    # Even a pending grant that should never exist (a forged or stale row) is refused.
    db.session.add(PendingGrant(case_id=about_g1.id, user_id=g1.user.id, key_type="dek"))
    db.session.commit()

    result = restore(cli, "RRK", key_file)
    assert result.exit_code == 0 and "restored 1 case key(s)" in result.output
    db.session.expire_all()
    assert held(g1.user) == {(readable.id, "dek")}
    assert pending(g1.user) == set()  # the forged grant is dropped, never given
    assert g1_client.get(f"/staff/cases/{readable.reference}").status_code == 200
    assert g1_client.get(f"/staff/cases/{about_g1.reference}").status_code == 404
    # Nor can a reader of that case restore it to the excluded guardian.
    db.session.add(PendingGrant(case_id=about_g1.id, user_id=g1.user.id, key_type="dek"))
    db.session.commit()
    refused = restore_as(staff_client(g2), about_g1, g1)
    assert refused.status_code == 400
    db.session.expire_all()
    assert (about_g1.id, "dek") not in held(g1.user)


# A colleague re-added the guardian before anyone restored ------------------------------------


@pytest.mark.parametrize("route", ["reader", "custodian"])
def test_a_grant_already_given_another_way_is_simply_cleared(
    route, app, org, key_file, g1, g2, make_staff, submit, staff_client, cli
):
    """The lead guardian assigns the case to G1 again once she has set up her account: G1
    holds the key, and the waiting restore is settled by that grant."""
    lead = make_staff(Role.LEAD_GUARDIAN, org, name="Lead Guardian")
    case = submit(org, what_happened=CANARY).case
    lead_client = staff_client(lead)
    reset("cli", g1, cli, None)
    g1_client = enrol(app, g1)
    version = db.session.get(type(case), case.id).version
    assigned = lead_client.post(
        f"/staff/cases/{case.reference}/assign",
        data={"user_id": str(g1.user.id), "version": str(version)},
    )
    assert assigned.status_code == 302, page(assigned)[:1000]
    db.session.expire_all()
    assert (case.id, "dek") in held(g1.user)
    assert pending(g1.user) == set()
    if route == "reader":
        refused = restore_as(staff_client(g2), case, g1)
        assert refused.status_code == 400 and "Nothing is waiting" in page(refused)
    else:
        result = restore(cli, "RRK", key_file)
        assert result.exit_code == 0 and "restored 0" in result.output, result.output
    assert_reads(g1_client, case)


def test_a_reader_removed_after_the_reset_is_not_given_the_case_back(
    app, org, key_file, g1, g2, make_staff, submit, staff_client, cli
):
    """The lead guardian (signed in since before the reset) removes G1 from the case: the
    waiting grants go with it, and neither route gives G1 the case again."""
    lead = make_staff(Role.LEAD_GUARDIAN, org, name="Lead Guardian")
    case = submit(org, what_happened=CANARY).case
    lead_client = staff_client(lead)
    reset("cli", g1, cli, None)
    assert pending(g1.user) == {(case.id, "dek")}
    version = db.session.get(type(case), case.id).version
    removed = lead_client.post(
        f"/staff/cases/{case.reference}/readers/remove",
        data={"user_id": str(g1.user.id), "version": str(version)},
    )
    assert removed.status_code == 302, page(removed)[:1000]
    db.session.expire_all()
    assert pending(g1.user) == set()

    g1_client = enrol(app, g1)
    assert restore_as(staff_client(g2), case, g1).status_code == 400
    assert restore(cli, "RRK", key_file).exit_code == 0
    db.session.expire_all()
    assert held(g1.user) == set()
    assert g1_client.get(f"/staff/cases/{case.reference}").status_code == 404
