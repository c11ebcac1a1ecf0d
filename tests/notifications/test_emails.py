"""Issue #18, item 4: e-mails (Django's locmem backend, `mailoutbox`) when a fine-tune finishes or fails, when
a training-access request is decided and when an epoch makes earnings claimable, each through the real
service that changes the state; and each person's settings turning a kind off (the review e-mail too)."""

import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.models import AuditEvent
from notifications import services
from notifications.models import Event, NotificationSettings, WebhookDelivery
from notifications.selectors import email_wanted

pytestmark = pytest.mark.django_db

OPEN = 10**18


def rows(n=12):
    return [{"text": f"{t} please help {i}", "label": label} for i in range(n // 2)
            for t, label in (("refund my payment", "billing"), ("where is my parcel", "shipping"))]


def published_version(datanet, curator, run_on_commit):
    from datanets.models import Record
    from datanets.services import contribution_create_from_rows, records_review, version_publish

    with run_on_commit():
        contribution = contribution_create_from_rows(datanet=datanet, contributor=curator, rows=rows())
    records_review(datanet=datanet, reviewer=curator, decision="accept",
                   record_ids=Record.objects.filter(contribution=contribution).values_list("pk", flat=True))
    return version_publish(datanet=datanet, actor=curator)


def test_settings_page_turns_kinds_off_and_on(alice, client):
    client.force_login(alice)
    page = client.get(reverse("notifications:settings")).content.decode()
    assert page.count('checked') == 4  # every kind is on until turned off
    assert 'href="/notifications/"' in client.get("/").content.decode()  # linked from the account menu
    response = client.post(reverse("notifications:settings"), {"fine_tune_finished": "on", "access_decided": "on"})
    assert response.status_code == 302
    assert not email_wanted(user=alice, kind="earnings_claimable")
    assert not email_wanted(user=alice, kind="contribution_reviewed")
    assert email_wanted(user=alice, kind="fine_tune_finished")
    page = client.get(reverse("notifications:settings")).content.decode()
    assert re.search(r'name="earnings_claimable"(?![^>]*checked)', page)
    audit = AuditEvent.objects.get(action="notifications.settings_update")
    assert audit.details == {"contribution_reviewed": False, "earnings_claimable": False}
    with pytest.raises(ValidationError, match="Unknown e-mail kind\\(s\\): newsletter"):
        services.notification_settings_update(user=alice, choices={"newsletter": True})
    assert client.get(reverse("notifications:settings")).status_code == 200


def test_access_decisions_are_emailed_and_can_be_turned_off(alice, dora, charlie, datanet_of, run_on_commit, mailoutbox):
    from datanets.services import access_request_create, access_request_decide

    datanet = datanet_of(alice, training_access="approval")
    asked = access_request_create(datanet=datanet, requester=dora, message="For a support model.")
    with run_on_commit():
        access_request_decide(access_request=asked, actor=alice, approve=True)
    [mail] = mailoutbox
    assert mail.to == [dora.email] and mail.subject == "You may now train on Support intents"
    assert "approved your request" in mail.body and "/models/jobs/new/" in mail.body
    assert "/notifications/" in mail.body  # where to turn it off

    services.notification_settings_update(user=charlie, choices={"access_decided": False})
    refused = access_request_create(datanet=datanet, requester=charlie)
    with run_on_commit():
        access_request_decide(access_request=refused, actor=alice, approve=False)
    assert len(mailoutbox) == 1  # charlie turned these off
    assert Event.objects.filter(type="access_request.refused").count() == 1  # the event happened all the same


def test_a_failed_fine_tune_emails_its_owner_and_calls_their_webhook(alice, datanet_of, run_on_commit, mailoutbox,
                                                                      endpoint, settings):
    from models_registry import services as model_services
    from models_registry.models import FineTuneJob, JobState

    version = published_version(datanet_of(alice), alice, run_on_commit)
    hook = services.webhook_create(owner=alice, url=endpoint.url, events=["fine_tune.failed", "fine_tune.succeeded"])
    job = model_services.fine_tune_create(owner=alice, name="Intents", base_model=model_services.base_model_ensure_default(),
                                          datanet_versions=[version], epochs=1)
    # Its worker died on every delivery: the next delivery fails the job (lineage.jobs), as in production.
    FineTuneJob.objects.filter(pk=job.pk).update(state=JobState.RUNNING, attempts=settings.TRAINING_MAX_DELIVERIES)
    with run_on_commit():
        model_services.fine_tune_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    [mail] = mailoutbox
    assert mail.to == [alice.email] and mail.subject == "Your fine-tune “Intents” failed"
    assert job.error in mail.body and f"/models/jobs/{job.pk}/" in mail.body
    [request] = endpoint.received
    assert request.json["type"] == "fine_tune.failed"
    assert request.json["data"]["fine_tune"]["error"] == job.error
    assert WebhookDelivery.objects.get(webhook=hook).state == "delivered"


@pytest.mark.slow
def test_a_finished_fine_tune_emails_its_owner_unless_turned_off(alice, bob, publish, run_on_commit, mailoutbox,
                                                                 endpoint, settings, tmp_path):
    from models_registry import services as model_services
    from models_registry.models import BaseModel, JobState
    from models_registry.training import build_tiny_causal_model

    settings.ATTRIBUTION_BUILD_ON_REGISTER = False
    sums = [{"prompt": f"What is {a} plus {b}?", "response": f"{a + b}"} for a in range(5) for b in range(5)]
    path = build_tiny_causal_model(tmp_path / "tiny", [f"{r['prompt']} {r['response']}" for r in sums], arch="llama", seed=0)
    base = BaseModel.objects.create(name="Tiny Llama", slug="tiny-llama", source_kind="path", source_ref=str(path),
                                    architecture="llama", task_types=["instruction", "text"])
    version = publish(alice, sums, task_type="instruction", labels=(), name="Sums")
    services.webhook_create(owner=alice, url=endpoint.url, events=["fine_tune.succeeded"])
    with run_on_commit():
        job = model_services.fine_tune_create(owner=alice, name="sums", base_model=base, datanet_versions=[version],
                                              epochs=1, batch_size=8, max_seq_length=48, eval_fraction=0.2)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    [mail] = mailoutbox
    assert mail.subject == "Your fine-tune “sums” finished" and job.model_version.slug in mail.body
    [request] = endpoint.received
    model = request.json["data"]["fine_tune"]["model"]
    assert (model["slug"], model["version_hash"]) == (job.model_version.slug, job.model_version.version_hash)

    services.notification_settings_update(user=alice, choices={"fine_tune_finished": False})
    with run_on_commit():
        again = model_services.fine_tune_create(owner=alice, name="sums 2", base_model=base, datanet_versions=[version],
                                                epochs=2, batch_size=8, max_seq_length=48, eval_fraction=0.2)
    again.refresh_from_db()
    assert again.state == JobState.SUCCEEDED and len(mailoutbox) == 1 and len(endpoint.received) == 2


def test_a_closed_epoch_emails_each_paid_person_their_amount(chain, dora, alice, charlie, run_on_commit, mailoutbox,
                                                              endpoint):
    from browser_support import personal_sign

    from rewards import services as reward_services
    from rewards.models import PayoutAllocation

    for user, account in ((dora, chain.wallets[0]), (alice, chain.wallets[1])):
        issued = reward_services.wallet_nonce_issue(user=user, address=account.address)
        reward_services.wallet_link(user=user, message=issued.message, signature=personal_sign(account, issued.message))
    reward_services.credit_grant(actor=None, user=charlie, amount=50 * OPEN, reason="test credit")
    reward_services.fee_settle(inference_id="mail-1", payer=charlie, model_owner=alice, fee=10 * OPEN,
                               contributor_shares={dora.pk: 10**6}, model_version_hash="0x" + "ab" * 32,
                               receipt_id="rc-1", contributor_rows={dora.pk: ["row-7"]})
    services.notification_settings_update(user=alice, choices={"earnings_claimable": False})
    doras = services.webhook_create(owner=dora, url=endpoint.url + "/dora", events=["epoch.closed"])
    services.webhook_create(owner=charlie, url=endpoint.url + "/charlie", events=["epoch.closed"])
    with run_on_commit():
        epoch = reward_services.epoch_close()
    assert epoch.state == "closed"
    amounts = dict(PayoutAllocation.objects.filter(epoch=epoch).values_list("user_id", "amount"))
    assert set(amounts) == {dora.pk, alice.pk} and amounts[dora.pk] == 6 * OPEN
    [mail] = mailoutbox  # alice turned these off; charlie paid and earned nothing
    assert mail.to == [dora.email] and mail.subject == "6 OPEN from epoch 1 can be claimed"
    assert chain.wallets[0].address in mail.body and "/rewards/claim/" in mail.body
    [request] = endpoint.received
    assert request.path.endswith("/dora") and request.json["type"] == "epoch.closed"
    data = request.json["data"]
    assert data["epoch"]["number"] == 1 and data["epoch"]["accounts"] == 2
    assert data["allocation"]["amount"] == str(6 * OPEN) and data["allocation"]["address"] == chain.wallets[0].address
    assert WebhookDelivery.objects.get(webhook=doras).state == "delivered"


def test_the_review_email_follows_the_setting_too(alice, dora, charlie, datanet_of, run_on_commit, mailoutbox):
    from datanets.models import Record
    from datanets.services import contribution_create_from_rows, records_review

    datanet = datanet_of(alice)
    for contributor, wanted in ((charlie, False), (dora, True)):
        services.notification_settings_update(user=contributor, choices={"contribution_reviewed": wanted})
        with run_on_commit():
            contribution = contribution_create_from_rows(datanet=datanet, contributor=contributor,
                                                         rows=rows(4) if wanted else [{"text": "hi", "label": "billing"}])
        with run_on_commit():
            records_review(datanet=datanet, reviewer=alice, decision="accept",
                           record_ids=Record.objects.filter(contribution=contribution).values_list("pk", flat=True))
    [mail] = mailoutbox
    assert mail.to == [dora.email] and "has been reviewed" in mail.subject
    assert NotificationSettings.objects.get(user=charlie).email_contribution_reviewed is False
