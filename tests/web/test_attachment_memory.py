"""Bounded memory for case pages: opening a case lists its files from their small metadata
and never reads the files themselves; a download reads the one file asked for."""

from __future__ import annotations

import re

from sqlalchemy import select

from speakup.cases.models import Attachment
from speakup.extensions import db
from tests.conftest import recorded_queries, sign_in
from tests.web.test_guardian import guardian, org, page, png_bytes, sanitised  # noqa: F401

DATA_COLUMN = re.compile(r"\battachment\.data_ct\b|\bdata_ct\b")


def test_a_case_page_lists_files_without_reading_their_contents(client, org, guardian, submit):  # noqa: F811
    files = [sanitised(f"scan-{n}.txt", (b"%d" % n) * 200_000) for n in range(5)]
    files.append(sanitised("ward.png", png_bytes()))
    case = submit(org, attachments=files).case
    reference, case_id = case.reference, case.id
    sign_in(client, guardian)
    db.session.expunge_all()  # nothing cached from the submission: the page loads afresh

    with recorded_queries() as queries:
        response = client.get(f"/staff/cases/{reference}")
    assert response.status_code == 200
    body = page(response)
    assert all(f"scan-{n}.txt" in body for n in range(5)) and "ward.png" in body
    assert any("attachment" in q for q in queries)  # the files were listed from the database
    assert not [q for q in queries if DATA_COLUMN.search(q)]

    first = db.session.scalars(
        select(Attachment.id).where(Attachment.case_id == case_id).order_by(Attachment.id)
    ).first()
    with recorded_queries() as queries:
        download = client.get(f"/staff/cases/{reference}/attachments/{first}")
    assert download.status_code == 200 and download.data == b"0" * 200_000
    reads = [q for q in queries if DATA_COLUMN.search(q)]
    assert len(reads) == 1 and "attachment.id = " in reads[0]  # exactly that one file
