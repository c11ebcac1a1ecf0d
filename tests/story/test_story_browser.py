"""The whole story in a real browser, as the people who live it, in turn:

1. Alice (contributor) uploads a CSV of billing tickets and sees each row's result;
2. Omar (the Datanet's owner) accepts her rows in the review queue; Alice sees them accepted;
3. Omar publishes a version, fine-tunes MiniLM on it from the form (tasks run eagerly), prices and deploys it;
4. Charlie (a developer) creates an API key, calls the model with the `openai` client against the live
   server and opens the attribution receipt of the answer;
5. Alice links a wallet by signing the SIWE message (an eth-account key) and sees what she has earned;
6. an admin closes the epoch from the Django admin (freeze, Merkle root, funding, root on chain);
7. Alice claims, and her OPEN balance on the chain moves by exactly the amount the page showed.

Screenshots of each step go to docs/screenshots/story-*.png with LINEAGE_SCREENSHOTS=1 (README walkthrough).
"""

import re
from decimal import Decimal
from types import SimpleNamespace

import openai
import pytest
from browser_support import assert_accessible, login, logout, personal_sign
from eth_account import Account
from eth_utils import keccak
from playwright.sync_api import expect

from datanets import services as datanet_services
from rewards import ledger
from rewards.models import AccountKind
from rewards.selectors import credit_balance
from rewards.services import credit_grant, fees_settle_pending

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OPEN = 10**18
PRICE = 10**16  # 0.01 OPEN per answer
LABELS = ["billing", "shipping", "account"]
SHIPPING = ["Where is my parcel, tracking has not moved since Monday", "The courier says delivered but nothing came",
            "Can I change the delivery address of my order", "My package is stuck in customs for a week",
            "The tracking number in the email does not work", "I paid for next-day delivery and it is late",
            "Only two of the three items in my order arrived", "The box arrived crushed and the glass broke",
            "Can you deliver on Saturday instead", "My parcel went to the wrong house"]
ACCOUNT = ["I cannot log in, the reset email never arrives", "How do I change the email on my account",
           "My account is locked after wrong passwords", "Please delete my account and my data",
           "The two-factor codes are rejected at login", "Someone changed my password, I see a strange login",
           "How do I add a colleague as an admin", "I have two accounts by mistake, please merge them",
           "The verification link says it has expired", "The app logs me out every few minutes"]
BILLING = ["I was charged twice for my March subscription", "My invoice shows VAT although I gave our VAT number",
           "Why did my monthly bill go up without notice", "The payment failed but the money left my account",
           "Please reissue the invoice with my company address", "I cancelled but you billed my card again",
           "There is a charge on my statement I do not recognise", "How do I switch from monthly to annual billing",
           "The promo code was not applied to my total", "You charged me in dollars instead of pounds"]
UPLOAD = "text,label\n" + "".join(f"{text},billing\n" for text in BILLING) + (
    "I want my money back for the toaster,refunds\n"  # not one of the Datanet's labels
    f"{SHIPPING[1]},shipping\n"  # Bob's ticket, pasted again: an exact duplicate
)
QUESTIONS = ["my card was charged twice this month", "why is my invoice higher than last time",
             "there is an unknown charge on my credit card"]
FINE_TUNE = {"Epochs": "6", "Batch size": "8", "Max sequence length": "32", "Evaluation split": "0.2",
             "Learning rate": "0.003"}


def contribute_accepted(datanet, owner, contributor, texts, label, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        contribution = datanet_services.contribution_create_from_rows(
            datanet=datanet, contributor=contributor, rows=[{"text": t, "label": label} for t in texts])
    datanet_services.records_review(datanet=datanet, reviewer=owner, decision="accept",
                                    record_ids=contribution.records.values_list("pk", flat=True))


@pytest.fixture
def world(make_user, alice, bob, charlie, dora, staff, django_capture_on_commit_callbacks):
    """Before the story: Omar's Datanet with v1 from Bob (shipping) and Dora (account), the bundled base
    model, the admin (the cast's staff), and 1 OPEN of credit the admin granted Charlie."""
    from models_registry.services import base_model_ensure_default

    # Outside the cast, and alice in another part than hers: the story is the README's walkthrough ("From upload
    # to payout"), told with its people and screenshots, where Omar owns the Datanet and Alice uploads to it.
    omar, admin = make_user("omar"), staff
    datanet = datanet_services.datanet_create(owner=omar, name="Support tickets", task_type="text-classification",
                                              label_set=LABELS, summary="Customer tickets by intent")
    contribute_accepted(datanet, omar, bob, SHIPPING, "shipping", django_capture_on_commit_callbacks)
    contribute_accepted(datanet, omar, dora, ACCOUNT, "account", django_capture_on_commit_callbacks)
    datanet_services.version_publish(datanet=datanet, actor=omar, notes="Bob's and Dora's tickets")
    base_model_ensure_default()
    credit_grant(actor=admin, user=charlie, amount=OPEN, reason="Developer trial credit")
    return SimpleNamespace(datanet=datanet, owner=omar, admin=admin, contributor=alice, developer=charlie)


def test_contribution_to_payout(live_server, page, world, chain, model_server, tmp_path, screenshot):
    datanet, owner, alice = world.datanet, world.owner, world.contributor

    # 1. Alice uploads her CSV: ten rows go to review, the bad label and the copy are refused with reasons.
    login(page, live_server, alice)
    page.goto(f"{live_server.url}/datanets/{datanet.slug}/contribute/")
    assert_accessible(page)
    upload = tmp_path / "billing-tickets.csv"
    upload.write_text(UPLOAD)
    page.get_by_label("File").set_input_files(str(upload))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_test_id("state")).to_have_text("In review", timeout=60_000)
    expect(page.get_by_test_id("rows-accepted")).to_have_text("10")
    expect(page.get_by_test_id("rows-rejected")).to_have_text("1")
    expect(page.get_by_test_id("rows-duplicate")).to_have_text("1")
    expect(page.locator("#row-errors")).to_contain_text("refunds")
    contribution_url = page.url
    assert_accessible(page)
    screenshot("story-1-upload")
    logout(page)

    # 2. Omar accepts her rows in the review queue; Alice then sees every row accepted.
    login(page, live_server, owner)
    page.goto(f"{live_server.url}/datanets/{datanet.slug}/review/")
    expect(page.get_by_test_id("progress")).to_contain_text("10 waiting")
    assert_accessible(page)
    page.get_by_label("Select all on this page").check()
    page.get_by_role("button", name="Accept selected").click()
    expect(page.get_by_test_id("progress")).to_contain_text("0 waiting")
    logout(page)
    login(page, live_server, alice)
    page.goto(contribution_url)
    expect(page.get_by_test_id("state")).to_have_text("Done")
    expect(page.locator("#rows tr[data-status='accepted']")).to_have_count(10)
    assert_accessible(page)
    screenshot("story-2-accepted")
    logout(page)

    # 3. Omar publishes v2, fine-tunes on it from the form, prices the model and deploys it.
    login(page, live_server, owner)
    page.goto(f"{live_server.url}/datanets/{datanet.slug}/versions/")
    assert_accessible(page)
    page.get_by_role("button", name="Publish version").click()
    expect(page.get_by_role("heading", name="v2")).to_be_visible()
    assert_accessible(page)
    page.goto(f"{live_server.url}/models/jobs/new/")
    assert_accessible(page)
    page.get_by_label("Name").fill("Support intents")
    page.get_by_label(re.compile("Support tickets v2")).check()
    page.locator("summary", has_text="LoRA and training settings").click()
    for label, value in FINE_TUNE.items():
        page.get_by_label(label).fill(value)
    page.get_by_role("button", name="Launch fine-tune").click(timeout=300_000)  # trains during the request
    expect(page.get_by_test_id("job-state")).to_have_text("Succeeded", timeout=300_000)
    assert_accessible(page)
    page.get_by_test_id("model-link").click()
    expect(page.get_by_test_id("attribution-status")).to_contain_text("Ready")
    page.get_by_label("Price per inference").fill("0.01")  # PRICE, typed in OPEN
    page.get_by_role("button", name="Save").click()
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator("h1 .badge")).to_have_text("deployed")
    expect(page.get_by_text("Trained on 24 rows from 3 contributors, 6 held out for evaluation")).to_be_visible()
    slug = page.locator(".lead code").inner_text()
    assert_accessible(page)
    screenshot("story-3-model")
    logout(page)
    report = model_server.sync()  # what serve_models' poll does under `make run`
    assert report.loaded == [slug], report.failed

    # 4. Charlie creates a key, asks the model through the openai client, and opens the receipt.
    login(page, live_server, world.developer)
    page.goto(f"{live_server.url}/account/keys/")
    page.get_by_label("Name").fill("support bot")
    page.get_by_label(re.compile(r"^\s*infer:")).check()
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-secret").inner_text().strip()
    assert_accessible(page)
    client = openai.OpenAI(api_key=secret, base_url=f"{live_server.url}/v1", max_retries=0, timeout=120)
    assert [m.id for m in client.models.list().data] == [slug]
    answers = [client.chat.completions.create(model=slug, messages=[{"role": "user", "content": q}])
               for q in QUESTIONS]
    for answer in answers:
        assert answer.choices[0].message.content in LABELS
        assert answer.model_extra["lineage"]["fee"] == str(PRICE) and answer.model_extra["lineage"]["receipt_id"]
    assert credit_balance(user=world.developer) == OPEN - len(QUESTIONS) * PRICE
    # Each answer carries its receipt id at once; the attribution worker stores the receipt right after (the
    # queued default: tasks run eagerly here, on the request's commit). Alice's rows are the only billing
    # rows: the receipts of billing answers credit her.
    from attribution.models import AttributionReceipt

    assert {a.model_extra["lineage"]["receipt_status"] for a in answers} == {"queued"}
    receipts = {r.receipt_id: r for r in AttributionReceipt.objects.filter(
        receipt_id__in=[a.model_extra["lineage"]["receipt_id"] for a in answers])}
    assert len(receipts) == len(answers)
    credited = [(question, answer.model_extra["lineage"]) for question, answer in zip(QUESTIONS, answers, strict=True)
                if str(alice.pk) in receipts[answer.model_extra["lineage"]["receipt_id"]].contributor_shares_ppm]
    assert credited, [r.contributor_shares_ppm for r in receipts.values()]
    question, lineage = credited[0]
    page.goto(lineage["receipt_url"])
    expect(page.get_by_role("heading", name="Attribution receipt")).to_be_visible()
    expect(page.get_by_test_id("input")).to_have_text(question)  # the asker sees their own question
    expect(page.locator("#shares")).to_contain_text("Alice")
    expect(page.locator("#rows tr[data-row]").first).to_be_visible()
    assert_accessible(page)
    screenshot("story-4-receipt")
    logout(page)
    fees_settle_pending()  # the fees are booked in batches: beat runs this every few seconds
    earned = ledger.balance(kind=AccountKind.EARNINGS, user=alice)
    assert earned > 0

    # 5. Alice links a wallet by signing the Sign-In-with-Ethereum message, and sees what she earned.
    wallet = Account.from_key(keccak(text="story: alice's wallet"))
    login(page, live_server, alice)
    page.goto(f"{live_server.url}/rewards/wallet/")
    page.get_by_label("Wallet address").fill(wallet.address)
    page.get_by_role("button", name="Prepare the message").click()
    message = page.locator("#message").input_value()
    assert wallet.address in message and f"Chain ID: {chain.client.chain_id}" in message
    assert_accessible(page)
    # A signature by another key is refused, and the message stays on the page to sign again.
    page.locator("#signature").fill(personal_sign(Account.from_key(keccak(text="someone else")), message))
    page.get_by_role("button", name="Link wallet").click()
    expect(page.get_by_role("alert")).to_contain_text("not made by the wallet named in the message")
    assert_accessible(page)
    page.get_by_label("Signature").fill(personal_sign(wallet, message))
    page.get_by_role("button", name="Link wallet").click()
    expect(page.get_by_test_id("current-wallet")).to_have_text(wallet.address)
    screenshot("story-5-wallet")
    page.goto(f"{live_server.url}/rewards/")
    # Figures are rounded for reading; each keeps its exact amount in its markup (`<data value>`).
    expect(page.get_by_test_id("earned").locator("data")).to_have_attribute(
        "value", ledger.format_open(earned, grouping=False))
    expect(page.get_by_test_id("pending")).to_have_text("0 OPEN")
    assert_accessible(page)
    logout(page)

    # 6. An admin closes the epoch from the Django admin: frozen, Merkle root built, funded and posted.
    login(page, live_server, world.admin)
    page.goto(f"{live_server.url}/rewards/admin/")
    assert_accessible(page)
    page.get_by_role("link", name="Close an epoch").click()
    page.locator("select[name='action']").select_option("close_epoch")
    page.get_by_role("button", name="Go").click()
    expect(page.locator(".messagelist")).to_contain_text("The epoch close is queued")
    page.goto(f"{live_server.url}/rewards/admin/")
    expect(page.locator("table").first.locator("tbody tr").first).to_contain_text("closed")
    expect(page.get_by_text("The database and the chain agree")).to_be_visible()
    assert_accessible(page)
    screenshot("story-6-epoch")
    logout(page)

    # 7. Alice claims; the chain moves exactly the amount the page showed into her wallet.
    login(page, live_server, alice)
    page.goto(f"{live_server.url}/rewards/")
    shown = page.get_by_test_id("claimable").locator("data").get_attribute("value")
    amount = int(Decimal(shown) * OPEN)
    assert amount == earned
    before = chain.token.balance_of(wallet.address)
    page.get_by_role("button", name="Claim for me").click()
    expect(page.get_by_test_id("relay-status")).to_contain_text("the OPEN was sent to your wallet")
    expect(page.get_by_text("Relayed in transaction")).to_be_visible()
    assert_accessible(page)
    assert chain.token.balance_of(wallet.address) - before == amount
    page.goto(f"{live_server.url}/rewards/")
    expect(page.get_by_test_id("paid").locator("data")).to_have_attribute("value", shown)
    assert_accessible(page)
    expect(page.get_by_test_id("claimable")).to_have_text("0 OPEN")
    screenshot("story-7-claimed")
    assert ledger.ledger_check().ok
