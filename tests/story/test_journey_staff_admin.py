"""Issue #22, the admin's whole journey on a fresh install, in a real browser, from the first superuser that
`manage.py createsuperuser` makes:

1. the admin signs in (by e-mail, where everyone does) and finds the Datanets app in the Django admin (#7: `/admin/datanets/` was a 404);
2. finds a newcomer's spam row by searching the rows, rejects it with an action, then accepts the rest of the
   upload from the contributions list filtered to those in review; both decisions are audited as moderation;
3. finds the Datanet by its name, with the rows it now has;
4. grants the newcomer inference credit typed in OPEN: "0,25" is refused with what to type, "0.25" is granted
   and listed in OPEN (#1, #5); model prices are listed in OPEN too (#5);
5. reads the staff pages: the rewards overview with every figure rounded and its exact amount in the markup
   (#22), the model servers' operator page, the governance queue; an address that does not exist answers the
   site's styled 404 page.

axe-core checks every page of the site the admin visits (tests/browser_support.assert_accessible), and the
Django admin's pages (Django's own templates) too."""

import io
import re
from html import escape

import pytest
from browser_support import assert_accessible, figures_off_their_labels
from django.contrib.auth import get_user_model
from django.core.management import call_command
from playwright.sync_api import expect

from accounts.models import AuditEvent
from datanets import services as datanet_services
from datanets.models import Record, RecordStatus
from models_registry.models import BaseModel, FineTuneJob, ModelVersion
from rewards import services as rewards_services
from rewards.amounts import format_open, format_open_rounded
from rewards.models import CreditGrant
from rewards.selectors import admin_overview, credit_balance

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OPEN = 10**18
PASSWORD = "a-long-and-unusual-passphrase-22"
SPAM = "buy cheap watches now at example dot com"
TICKETS = ["refund my double charge", "where is my parcel", "my invoice shows the wrong address"]


def sign_up(client, email: str):
    response = client.post("/accounts/signup/", {"email": email, "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:2000]
    client.logout()
    return get_user_model().objects.get(email=email)


@pytest.fixture
def fresh_install(monkeypatch, client, settings, alice, django_capture_on_commit_callbacks):
    """The first superuser, made as the README says, and what people did before the admin looks: Alice's public
    Datanet with one published version, and a newcomer who signed up and uploaded three tickets and a spam row."""
    settings.REWARDS_STARTER_GRANT_OPEN = "0"  # production's policy: the admin grants credit
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command("createsuperuser", interactive=False, username="root", email="root@example.org",
                 stdout=io.StringIO())
    datanet = datanet_services.datanet_create(owner=alice, name="Support tickets", task_type="text-classification",
                                              label_set=["billing", "shipping"], visibility="public")
    with django_capture_on_commit_callbacks(execute=True):
        seeded = datanet_services.contribution_create_from_rows(
            datanet=datanet, contributor=alice, rows=[{"text": f"charged twice {i}", "label": "billing"}
                                                     for i in range(4)])
    datanet_services.records_review(datanet=datanet, reviewer=alice, decision="accept",
                                    record_ids=seeded.records.values_list("pk", flat=True))
    datanet_services.version_publish(datanet=datanet, actor=alice)
    newcomer = sign_up(client, "newcomer@example.org")
    rows = [{"text": t, "label": "billing"} for t in TICKETS] + [{"text": SPAM, "label": "shipping"}]
    with django_capture_on_commit_callbacks(execute=True):
        upload = datanet_services.contribution_create_from_rows(datanet=datanet, contributor=newcomer, rows=rows)
    base = BaseModel.objects.create(name="MiniLM", slug="minilm-journey", source_kind="local", source_ref="tiny",
                                    architecture="bert", task_types=["text-classification"])
    job = FineTuneJob.objects.create(owner=alice, name="intents", base_model=base, task="text-classification")
    model = ModelVersion.objects.create(
        job=job, owner=alice, base_model=base, name="Ticket intents", slug="ticket-intents", version_hash="e" * 64,
        task="text-classification", label_names=["billing", "shipping"], storage_prefix="models/ticket-intents",
        manifest={}, price_per_inference=OPEN // 20)
    return {"root": get_user_model().objects.get(username="root"), "alice": alice, "newcomer": newcomer,
            "datanet": datanet, "upload": upload, "model": model}


def run_action(page, action: str):
    page.locator("select[name='action']").select_option(action)
    page.get_by_role("button", name="Go").click()


def test_a_new_admin_moderates_grants_credit_and_reads_the_books(live_server, page, fresh_install):
    root, newcomer, datanet, upload = (fresh_install[k] for k in ("root", "newcomer", "datanet", "upload"))
    assert root.is_superuser and root.is_staff

    # 1. The admin signs in where everyone does (the admin sends there), by e-mail, and lands on the Django admin's
    # index: the Datanets app is there.
    page.goto(f"{live_server.url}/admin/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=%2Fadmin%2F$"))
    assert_accessible(page)
    page.get_by_label("Email").fill("root@example.org")
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    assert_accessible(page)
    page.locator("#content-main").get_by_role("link", name="Datanets", exact=True).first.click()  # the app's page
    expect(page).to_have_url(re.compile(r"/admin/datanets/$"))
    expect(page.get_by_role("heading", name="Datanets administration")).to_be_visible()
    for model in ("datanet", "contribution", "record", "datanetversion", "rowerror", "membership"):
        expect(page.locator(f"#main tr.model-{model} th a")).to_be_visible()
    assert_accessible(page)

    # 2. The spam row, found by its text and rejected; the rest of the upload accepted from the contributions.
    page.locator("#main tr.model-record th a").click()
    page.locator("#searchbar").fill("cheap watches")
    page.locator("#searchbar").press("Enter")
    results = page.locator("#result_list tbody tr")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("buy cheap watches")
    assert_accessible(page)
    results.first.locator("input.action-select").check()
    run_action(page, "reject_rows")
    expect(page.locator(".messagelist")).to_contain_text("1 row rejected (audited as moderation)")
    spam = Record.objects.get(contribution=upload, label="shipping")
    assert spam.status == RecordStatus.REJECTED and spam.reason

    page.goto(f"{live_server.url}/admin/datanets/contribution/?state__exact=in_review")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(f"Contribution #{upload.pk} to Support tickets")
    assert_accessible(page)
    rows.first.locator("input.action-select").check()
    run_action(page, "accept_pending_rows")
    expect(page.locator(".messagelist")).to_contain_text("3 rows accepted (audited as moderation)")
    assert set(Record.objects.filter(contribution=upload).values_list("status", flat=True)) == {
        RecordStatus.ACCEPTED, RecordStatus.REJECTED}
    moderated = AuditEvent.objects.filter(actor=root, details__moderated_in_admin=True)
    assert sorted(moderated.values_list("action", flat=True)) == ["record.accept", "record.reject"]

    # 3. The Datanet, found by its name, with the rows accepted so far (4 of Alice's, the newcomer's 3).
    page.goto(f"{live_server.url}/admin/datanets/datanet/")
    page.locator("#searchbar").fill("Support")
    page.locator("#searchbar").press("Enter")
    found = page.locator("#result_list tbody tr")
    expect(found).to_have_count(1)
    expect(found.first.locator("td.field-accepted_rows")).to_have_text("7")
    expect(found.first).to_contain_text(datanet.slug)
    assert_accessible(page)

    # 4. Credit for the newcomer, typed in OPEN: a comma is refused with what to type, a point is granted.
    page.goto(f"{live_server.url}/admin/rewards/creditgrant/add/")
    page.locator("#id_user").fill(str(newcomer.pk))
    page.get_by_label("Amount").fill("0,25")
    page.get_by_label("Reason").fill("Welcome credit")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".errorlist")).to_contain_text("Enter an amount of OPEN such as 0.05")
    assert not CreditGrant.objects.filter(user=newcomer).exists()
    assert_accessible(page)
    page.get_by_label("Amount").fill("0.25")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    granted = page.locator("#result_list tbody tr").first
    expect(granted).to_contain_text("0.25 OPEN")
    expect(granted).to_contain_text("Welcome credit")
    assert str(OPEN // 4) not in page.locator("#result_list").inner_text()  # never base units
    assert credit_balance(user=newcomer) == OPEN // 4
    assert AuditEvent.objects.filter(actor=root, action="rewards.credit_grant").count() == 1
    page.goto(f"{live_server.url}/admin/models_registry/modelversion/")
    expect(page.locator("#result_list tbody tr").first).to_contain_text("0.05 OPEN")
    assert str(OPEN // 20) not in page.locator("#result_list").inner_text()
    assert_accessible(page)

    # The newcomer spends some of it on an answer from Alice's model (the fee is booked as the API books it).
    rewards_services.fee_settle(inference_id="journey-admin-1", payer=newcomer, model_owner=fresh_install["alice"],
                                fee=OPEN // 100 + 7, contributor_shares={newcomer.pk: 10**6},
                                model_version_hash=fresh_install["model"].version_hash, receipt_id="rc-journey-admin")

    # 5. The staff pages: every figure rounded for reading, its exact amount in the markup.
    page.goto(f"{live_server.url}/rewards/admin/")
    figures = admin_overview()["figures"]
    for testid, key in (("treasury", "treasury"), ("pending-total", "pending"), ("paid-total", "paid_out")):
        amount = page.get_by_test_id(testid).locator("data")
        expect(amount).to_have_text(f"{format_open_rounded(figures[key])} OPEN")
        expect(amount).to_have_attribute("value", format_open(figures[key], grouping=False))
    granted_total = page.locator("dt", has_text="Granted").locator("xpath=following-sibling::dd[1]/data")
    expect(granted_total).to_have_text("0.25 OPEN")
    accruing = page.locator("dt", has_text="Accruing earnings").locator("xpath=following-sibling::dd[1]/data")
    assert format_open(figures["accruing"]) != format_open_rounded(figures["accruing"])  # 18-decimal noise
    expect(accruing).to_have_text(f"{format_open_rounded(figures['accruing'])} OPEN")
    expect(accruing).to_have_attribute("title", f"{format_open(figures['accruing'])} OPEN")
    assert escape(format_open(figures["accruing"])) not in page.locator("main").inner_text()
    assert not figures_off_their_labels(page)
    assert_accessible(page)

    page.goto(f"{live_server.url}/playground/operator/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert_accessible(page)
    page.goto(f"{live_server.url}/governance/queue/")
    expect(page.get_by_test_id("to-queue")).to_contain_text("Nothing to queue.")
    assert_accessible(page)
    response = page.goto(f"{live_server.url}/models/no-such-model/")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_role("link", name="Go home")).to_be_visible()
    assert_accessible(page)
