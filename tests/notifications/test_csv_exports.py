"""Issue #18, item 5: the rewards page's earnings and receipts download as CSV (every row, not one page),
through the site's one formula-neutralising CSV writer (`lineage.csv_export`), which the row-errors CSV of
an upload uses as well."""

import csv
import io

import pytest
from django.urls import reverse

from lineage.csv_export import csv_chunks

pytestmark = pytest.mark.django_db

OPEN = 10**18
MODEL = "0x" + "cd" * 32
EVIL = '=HYPERLINK("http://evil.example","click")'


def read_csv(response) -> list[dict]:
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(body)))


@pytest.fixture
def paid_answers(alice, dora, charlie):
    """Charlie paid for two answers of alice's model; dora's rows earned the contributors' share of each."""
    from rewards.services import credit_grant, fee_settle

    credit_grant(actor=None, user=charlie, amount=50 * OPEN, reason="test credit")
    fee_settle(inference_id="plain-1", payer=charlie, model_owner=alice, fee=10 * OPEN, contributor_shares={dora.pk: 10**6},
               model_version_hash=MODEL, receipt_id="rc-1", contributor_rows={dora.pk: ["row-7", "row-9"]})
    fee_settle(inference_id=EVIL, payer=charlie, model_owner=alice, fee=5 * OPEN, contributor_shares={dora.pk: 10**6},
               model_version_hash=MODEL, receipt_id="", contributor_rows={dora.pk: ["-row-3"]})


def test_earnings_csv_has_every_row_with_formulas_neutralised(paid_answers, alice, dora, client, monkeypatch):
    from rewards import views

    monkeypatch.setattr(views, "CSV_PAGE_ROWS", 1)  # two rows: read across two pages of the selector
    client.force_login(dora)
    table = read_csv(client.get(reverse("rewards:earnings_csv")))
    assert list(table[0]) == views.EARNINGS_CSV_HEADER
    assert [r["inference_id"] for r in table] == ["'" + EVIL, "plain-1"]  # newest first; the formula is text
    newest, oldest = table
    assert (oldest["role"], oldest["amount_open"], oldest["amount_base_units"]) == ("contributor", "6", str(6 * OPEN))
    assert oldest["rows"] == "row-7 row-9" and oldest["status"] == "accruing" and oldest["epoch"] == ""
    assert oldest["receipt_url"] == "http://testserver/attribution/receipts/rc-1/"
    assert oldest["model_version_hash"] == MODEL and oldest["when_utc"].endswith("+00:00")
    assert newest["rows"] == "'-row-3" and newest["receipt_url"] == "" and newest["amount_open"] == "3"
    client.force_login(alice)
    assert {r["role"] for r in read_csv(client.get(reverse("rewards:earnings_csv")))} == {"owner"}


def test_receipts_csv_lists_what_the_payer_paid(paid_answers, charlie, alice, client):
    from rewards import views

    client.force_login(charlie)
    table = read_csv(client.get(reverse("rewards:receipts_csv")))
    assert list(table[0]) == views.RECEIPTS_CSV_HEADER
    assert [(r["inference_id"], r["fee_open"], r["fee_base_units"], r["receipt_id"]) for r in table] == [
        ("'" + EVIL, "5", str(5 * OPEN), ""), ("plain-1", "10", str(10 * OPEN), "rc-1")]
    client.force_login(alice)
    assert read_csv(client.get(reverse("rewards:receipts_csv"))) == []  # alice paid for nothing


def test_exports_are_linked_from_the_rewards_page_and_need_a_sign_in(paid_answers, alice, client):
    assert client.get(reverse("rewards:earnings_csv"))["Location"].startswith("/accounts/login/")
    assert client.get(reverse("rewards:receipts_csv"))["Location"].startswith("/accounts/login/")
    client.force_login(alice)
    page = client.get(reverse("rewards:index")).content.decode()
    assert reverse("rewards:earnings_csv") in page


def test_the_shared_writer_neutralises_every_formula_trigger_and_chunks_alike():
    rows = [["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "plain", None, 7, "a,b", 'say "hi"']] * 3
    one = b"".join(csv_chunks(["h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9", "h10", "h11"], rows, chunk_rows=1))
    assert one == b"".join(csv_chunks(["h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9", "h10", "h11"], rows))
    parsed = list(csv.reader(io.StringIO(one.decode())))
    assert parsed[1] == ["'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tx", "'\rx", "plain", "", "7", "a,b", 'say "hi"']
    assert len(parsed) == 4


def test_the_row_errors_download_goes_through_the_shared_writer(alice, dora, client, datanet_of, run_on_commit):
    from datanets.services import contribution_create_from_rows

    datanet = datanet_of(alice)
    with run_on_commit():
        contribution = contribution_create_from_rows(datanet=datanet, contributor=dora,
                                                     rows=[{"text": "@cmd|' /C calc'!A0", "label": "nope"}])
    client.force_login(dora)
    page = client.get(reverse("datanets:contribution_errors_csv", args=[datanet.slug, contribution.pk]))
    api = client.get(f"/api/v1/datanets/{datanet.slug}/contributions/{contribution.pk}/errors.csv")
    for response in (page, api):
        [row] = read_csv(response)
        assert row["text"] == "'@cmd|' /C calc'!A0" and row["label"] == "nope"
