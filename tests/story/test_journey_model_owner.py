"""Issue #22, the model owner's whole journey on a fresh install, in a real browser, from a new account:

1. Nadia signs up (no starter grant: production's policy) and creates a text-classification Datanet;
2. she uploads a PDF by mistake and reads that the type is not supported, with a Failed step (#12);
3. she uploads her tickets as CSV, accepts them in the review queue and publishes v1; a second upload becomes v2;
4. the fine-tune form refuses v1 and v2 together, with the reason (#4); on v2 alone it trains, and the job page's
   last step and epoch agree with its log (#10);
5. the model card counts the rows it trained on and held out (#9), names her by her public name, never her
   e-mail (#3); she types the price in OPEN ("0.05") and the card shows it rounded, the exact amount in its
   markup (#5, #22), then deploys;
6. the playground refuses her first message for lack of credit and links the deposit page (#1), which gives the
   deposit address, asks her to link a wallet, and shows the deposit indexer; she links her wallet by signing,
   sends OPEN from it, and once the indexer has scanned the transfer the page shows what was credited, rounded;
7. her own model answers her in the playground, with its fee rounded as every page rounds OPEN, the receipt
   panel and the receipt page naming her as on the model card; the credit left is shown rounded, the exact
   amount in the markup.

axe-core checks every page she visits (tests/browser_support.assert_accessible)."""

import re
from decimal import Decimal

import pytest
from browser_support import assert_accessible, personal_sign, sign_up
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from attribution.models import AttributionReceipt
from inference.models import InferenceRecord
from models_registry.services import base_model_ensure_default
from rewards import services as rewards_services
from rewards.amounts import format_open

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OPEN = 10**18
EMAIL = "nadia.owner@example.org"
PASSWORD = "a-long-and-unusual-passphrase-22"
PRICE = OPEN // 20  # typed as "0.05"
DEPOSIT = OPEN + 7  # 1.000000000000000007 OPEN: shown as 1 OPEN
BILLING = ["I was charged twice", "refund my payment", "my invoice is wrong", "the card payment failed",
           "why was I billed again", "cancel the charge on my card"]
SHIPPING = ["where is my parcel", "the courier lost my package", "delivery is late", "tracking number does not work",
            "parcel arrived damaged", "change my delivery address"]
FINE_TUNE = {"Epochs": "4", "Batch size": "8", "Max sequence length": "32", "Evaluation split": "0.25",
             "Learning rate": "0.002"}
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


def tickets_csv(start: int, count: int) -> str:
    """`count` billing and `count` shipping tickets, numbered from `start` (each row its own text)."""
    lines = [f"{BILLING[i % 6]} please help {start + i},billing\n{SHIPPING[i % 6]} please help {start + i},shipping\n"
             for i in range(count)]
    return "text,label\n" + "".join(lines)


def upload(page, live_server, slug, path):
    page.goto(f"{live_server.url}/datanets/{slug}/contribute/")
    page.get_by_label("File").set_input_files(str(path))
    page.get_by_role("button", name="Upload").click()


def accept_all_and_publish(page, live_server, slug, number):
    page.goto(f"{live_server.url}/datanets/{slug}/review/")
    assert_accessible(page)
    page.get_by_label("Select all on this page").check()
    page.get_by_role("button", name="Accept selected").click()
    expect(page.get_by_test_id("progress")).to_contain_text("0 waiting")
    page.goto(f"{live_server.url}/datanets/{slug}/versions/")
    page.get_by_role("button", name="Publish version").click()
    expect(page.get_by_role("heading", name=f"v{number}")).to_be_visible()
    assert_accessible(page)


def test_a_new_model_owner_deploys_a_model_pays_for_it_and_uses_it(live_server, page, chain, model_server, settings,
                                                                   tmp_path, screenshot):
    settings.REWARDS_STARTER_GRANT_OPEN = "0"  # production's policy: credit comes from deposits (or an admin)
    base_model_ensure_default()  # what `make run` registers on a fresh install

    # 1. Sign up, then create a Datanet.
    sign_up(page, live_server, EMAIL, PASSWORD, check_accessible=True)
    nadia = get_user_model().objects.get(email=EMAIL)
    name = nadia.public_name
    assert name and "@" not in name
    page.goto(f"{live_server.url}/datanets/new/")
    assert_accessible(page)
    page.get_by_label("Name").fill("Support tickets")
    page.get_by_label("Task type").select_option("text-classification")
    page.get_by_label("Labels").fill("billing, shipping")
    page.get_by_role("button", name="Create Datanet").click()
    expect(page.get_by_role("heading", name="Support tickets")).to_be_visible()
    assert_accessible(page)
    slug = page.url.rstrip("/").rsplit("/", 1)[-1]

    # 2. A PDF by mistake: refused for its type, with what to export instead, and a Failed step.
    pdf = tmp_path / "tickets.pdf"
    pdf.write_bytes(PDF)
    upload(page, live_server, slug, pdf)
    expect(page.get_by_text(re.compile("PDF files are not supported"))).to_be_visible()
    expect(page.locator('li[data-step="failed"][data-status="failed"]')).to_be_visible()
    assert_accessible(page)

    # 3. Her tickets as CSV: accepted and published as v1; a second upload becomes v2.
    first, second = tmp_path / "tickets-1.csv", tmp_path / "tickets-2.csv"
    first.write_text(tickets_csv(0, 16))
    second.write_text(tickets_csv(100, 8))
    upload(page, live_server, slug, first)
    expect(page.get_by_test_id("state")).to_have_text("In review", timeout=60_000)
    expect(page.get_by_test_id("rows-accepted")).to_have_text("32")
    assert_accessible(page)
    accept_all_and_publish(page, live_server, slug, 1)
    upload(page, live_server, slug, second)
    expect(page.get_by_test_id("state")).to_have_text("In review", timeout=60_000)
    accept_all_and_publish(page, live_server, slug, 2)

    # 4. The form refuses two versions of one Datanet with the reason; v2 alone trains.
    page.goto(f"{live_server.url}/models/jobs/new/")
    assert_accessible(page)
    page.get_by_label("Name").fill("Ticket intents")
    page.get_by_label(re.compile("Support tickets v1")).check()
    page.get_by_label(re.compile("Support tickets v2")).check()
    page.locator("summary", has_text="LoRA and training settings").click()
    for label, value in FINE_TUNE.items():
        page.get_by_label(label).fill(value)
    page.get_by_role("button", name="Launch fine-tune").click()
    expect(page.locator(".errorlist")).to_contain_text(re.compile("v1 and v2 of “Support tickets”"))
    assert_accessible(page)
    page.get_by_label(re.compile("Support tickets v1")).uncheck()
    if not page.get_by_label("Epochs").is_visible():
        page.locator("summary", has_text="LoRA and training settings").click()
    for label, value in FINE_TUNE.items():  # kept by the form; typed again in case a value was reset
        page.get_by_label(label).fill(value)
    page.get_by_role("button", name="Launch fine-tune").click(timeout=300_000)  # tasks run eagerly here
    expect(page.get_by_test_id("job-state")).to_have_text("Succeeded", timeout=300_000)
    progress = page.get_by_test_id("job-progress").inner_text()
    step, steps, epoch, epochs = map(int, re.fullmatch(r"Step (\d+) of (\d+), epoch (\d+) of (\d+)", progress).groups())
    assert (step, epoch) == (steps, epochs) and steps > 0
    log = page.locator("pre.log").inner_text()
    assert log.count(f"epoch {epochs}/{epochs} done") == 1 and f"epoch {epochs + 1}/" not in log
    assert_accessible(page)

    # 5. The model card: the rows it learned from, her public name, the price typed and shown in OPEN; deploy.
    page.get_by_test_id("model-link").click()
    expect(page.get_by_test_id("attribution-status")).to_contain_text("Ready")
    expect(page.get_by_test_id("trained-on")).to_have_text(
        "Trained on 36 rows from 1 contributor, 12 held out for evaluation.")
    expect(page.get_by_test_id("learning-warning")).to_have_count(0)  # separable tickets: it learned
    owner = page.locator("dt", has_text="Owner").locator("xpath=following-sibling::dd[1]")
    expect(owner).to_have_text(name)
    assert EMAIL not in page.locator("main").inner_text()
    page.get_by_label("Price per inference").fill("0.05")
    page.get_by_role("button", name="Save").click()
    price = page.get_by_test_id("price").locator("data")
    expect(price).to_have_text("0.05 OPEN")
    expect(price).to_have_attribute("title", "0.05 OPEN")
    expect(page.get_by_label("Price per inference")).to_have_value("0.05")
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator("h1 .badge")).to_have_text("deployed")
    model_slug = page.locator(".lead code").inner_text()
    assert_accessible(page)
    screenshot("journey-owner-model")
    report = model_server.sync()  # what serve_models' poll does under `make run`
    assert report.loaded == [model_slug], report.failed

    # 6. No credit yet: the playground says so and links the deposit page.
    page.goto(f"{live_server.url}/playground/")
    expect(page.get_by_test_id("credit").locator("data")).to_have_text("0 OPEN")
    page.get_by_label("Model").select_option(model_slug)
    expect(page.get_by_label("Model").locator("option:checked")).to_have_text(
        re.compile(r"· 0\.05 OPEN$"))
    page.get_by_label("Message").fill("refund my payment please")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("alert")).to_contain_text("Insufficient credit")
    assert_accessible(page)
    page.get_by_test_id("deposit-link").click()
    expect(page.get_by_test_id("deposit-address")).to_have_text(chain.deployment.deposit_address)
    expect(page.get_by_test_id("no-wallet")).to_be_visible()
    expect(page.get_by_test_id("indexer")).to_contain_text("not scanned yet")
    expect(page.get_by_test_id("starter-grant")).to_have_count(0)
    assert_accessible(page)

    # She links her wallet by signing the message, and sends OPEN from it to the deposit address.
    wallet = chain.wallets[3]  # one of the development chain's accounts: it has ether for gas
    chain.token.transfer(wallet.address, 2 * OPEN, sender=chain.treasury)
    page.get_by_role("link", name="Link a wallet").click()
    page.get_by_label("Wallet address").fill(wallet.address)
    page.get_by_role("button", name="Prepare the message").click()
    message = page.locator("#message").input_value()
    page.get_by_label("Signature").fill(personal_sign(wallet, message))
    page.get_by_role("button", name="Link wallet").click()
    expect(page.get_by_test_id("current-wallet")).to_have_text(wallet.address)
    assert_accessible(page)
    chain.token.transfer(chain.deployment.deposit_address, DEPOSIT, sender=wallet)
    assert rewards_services.deposits_index() == 1  # what the deposit indexer's beat does every minute
    page.goto(f"{live_server.url}/rewards/deposit/")
    expect(page.get_by_test_id("wallet")).to_have_text(wallet.address)
    expect(page.get_by_test_id("indexer")).to_contain_text("last block scanned")
    credit = page.get_by_test_id("credit").locator("data")
    expect(credit).to_have_text("1 OPEN")
    expect(credit).to_have_attribute("title", "1.000000000000000007 OPEN")
    expect(page.get_by_test_id("deposited").locator("data")).to_have_attribute("value", "1.000000000000000007")
    assert_accessible(page)
    screenshot("journey-owner-deposit")

    # 7. Her own model answers her; the fee and the credit left are rounded, exact in the markup.
    page.goto(f"{live_server.url}/playground/")
    expect(page.get_by_test_id("credit").locator("data")).to_have_text("1 OPEN")
    page.get_by_label("Model").select_option(model_slug)
    page.get_by_label("Message").fill("refund my payment please")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("answer")).to_have_text("billing")
    expect(page.get_by_test_id("receipt-link")).to_have_attribute(
        "href", re.compile(r"/attribution/receipts/[^/]+/$"), timeout=60_000)
    fee = page.locator("#pg-fee")
    expect(fee).to_have_text("0.05")
    expect(fee).to_have_attribute("title", "0.05 OPEN")
    # The receipt panel and the receipt page name her as the model card does (her rows trained the model), or
    # say why nobody is named when no group of rows rose above its noise level.
    record = InferenceRecord.objects.get(user=nadia, status="succeeded")
    receipt = AttributionReceipt.objects.get(receipt_id=record.receipt_id)
    credited = str(nadia.pk) in receipt.contributor_shares_ppm
    contributors = page.locator("#pg-contributors")
    if credited:
        expect(contributors.locator(".bar-row")).to_have_count(1)
        expect(contributors.locator(".bar-row").first).to_contain_text(name)
    else:
        expect(contributors).to_contain_text("No contributor's influence rose above the noise floor")
    assert EMAIL not in page.locator("main").inner_text()
    assert_accessible(page)
    screenshot("journey-owner-playground")
    page.get_by_test_id("receipt-link").click()
    expect(page.get_by_role("heading", name="Attribution receipt")).to_be_visible()
    expect(page.get_by_test_id("input")).to_have_text("refund my payment please")
    if credited:
        expect(page.locator("#shares")).to_contain_text(name)
    else:
        expect(page.get_by_test_id("no-shares")).to_be_visible()
    assert EMAIL not in page.locator("main").inner_text()
    assert_accessible(page)
    page.goto(f"{live_server.url}/playground/")
    left = page.get_by_test_id("credit").locator("data")
    expect(left).to_have_text("0.95 OPEN")
    expect(left).to_have_attribute("value", format_open(DEPOSIT - PRICE, grouping=False))
    assert Decimal(left.get_attribute("value")) == Decimal("0.950000000000000007")
