"""Issue #18, item 4: webhooks. Signed JSON deliveries checked with the recipe exactly as docs/notifications.md
prints it, retries with backoff against a real local HTTP server (500 then 200), giving up, time-outs,
refusing private and loopback destinations outside development (SSRF), who may add which webhook, and the
pages (list, add with bad input, the delivery log, test event, remove)."""

import re
import time
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from accounts.models import AuditEvent
from notifications import services
from notifications.models import DeliveryState, Event, Webhook, WebhookDelivery
from notifications.signing import signature_header

pytestmark = pytest.mark.django_db

DOCS = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"
ROWS = [{"text": f"where is my parcel number {i}", "label": "shipping"} for i in range(3)]


def documented_verify():
    """The `verify` function of docs/notifications.md's "Verifying signatures" section, run as printed."""
    section = DOCS.read_text().split("## Verifying signatures", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 10, "the recipe is meant to fit in ten lines"
    namespace = {}
    exec(compile(code, str(DOCS), "exec"), namespace)  # noqa: S102 - the documented recipe, verbatim
    return namespace["verify"]


def upload(datanet, contributor, run_on_commit, rows=ROWS):
    from datanets.services import contribution_create_from_rows

    with run_on_commit():
        return contribution_create_from_rows(datanet=datanet, contributor=contributor, rows=rows)


def test_a_test_event_verifies_with_the_documented_recipe(alice, client, endpoint, run_on_commit):
    verify = documented_verify()
    hook = services.webhook_create(owner=alice, url=endpoint.url, events=["version.published"])
    client.force_login(alice)
    with run_on_commit():
        response = client.post(reverse("notifications:webhook_test", args=[hook.pk]))
    assert response.status_code == 302
    [request] = endpoint.received
    header = request.headers["x-lineage-signature"]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify(hook.secret, request.body, header)
    assert request.headers["x-lineage-event"] == "webhook.test"
    assert request.headers["content-type"] == "application/json"
    body = request.json
    assert body["type"] == "webhook.test" and body["id"].startswith("evt_") and body["data"]["webhook"]["id"] == hook.pk
    # The recipe refuses what it must: another body, another secret, an old or malformed header.
    assert not verify(hook.secret, request.body.replace(b"test", b"tost"), header)
    assert not verify("whsec_someone-else", request.body, header)
    old = int(time.time()) - 3600
    assert not verify(hook.secret, request.body, signature_header(secret=hook.secret, timestamp=old, body=request.body))
    assert verify(hook.secret, request.body, signature_header(secret=hook.secret, timestamp=int(time.time()),
                                                              body=request.body))
    for broken in ("", "v1=abc", "t=notanumber,v1=" + "0" * 64, "garbage"):
        assert not verify(hook.secret, request.body, broken)
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert (delivery.state, delivery.attempts, delivery.status_code) == (DeliveryState.DELIVERED, 1, 200)
    assert AuditEvent.objects.filter(action="notifications.webhook_test", object_id=str(hook.pk)).exists()


def test_a_failing_endpoint_is_retried_until_it_answers_2xx(alice, dora, client, endpoint, run_on_commit, datanet_of):
    verify = documented_verify()
    endpoint.statuses = [500, 200]
    datanet = datanet_of(alice)
    hook = services.webhook_create(owner=alice, url=endpoint.url, events=["contribution.validated"], datanet=datanet)
    contribution = upload(datanet, dora, run_on_commit)

    first, second = endpoint.received
    assert first.body == second.body  # the same event, byte for byte
    assert all(verify(hook.secret, r.body, r.headers["x-lineage-signature"]) for r in endpoint.received)
    payload = second.json
    assert payload["type"] == "contribution.validated"
    assert payload["data"]["contribution"] == {**payload["data"]["contribution"], "id": contribution.pk,
                                               "datanet": datanet.slug, "rows_accepted": 3, "contributor_id": dora.pk}
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert (delivery.state, delivery.attempts, delivery.status_code, delivery.last_error) == (
        DeliveryState.DELIVERED, 2, 200, "")
    assert '"attempt": 2' in delivery.response_excerpt

    client.force_login(alice)
    page = client.get(hook.get_absolute_url()).content.decode()
    row = re.search(rf'<tr data-delivery="{delivery.pk}" data-state="delivered">(.*?)</tr>', page, re.S).group(1)
    assert "contribution.validated" in row and "<td>2</td>" in row and "HTTP 200" in row


def test_backoff_doubles_from_the_base_up_to_the_cap(settings):
    settings.WEBHOOKS_RETRY_BASE_S, settings.WEBHOOKS_RETRY_MAX_S = 30, 600
    assert [services.retry_delay_s(n) for n in range(1, 8)] == [30, 60, 120, 240, 480, 600, 600]


def test_a_delivery_gives_up_after_the_last_attempt_and_says_why(alice, client, endpoint, run_on_commit, settings):
    settings.WEBHOOKS_MAX_ATTEMPTS = 3
    endpoint.statuses = [503]
    hook = services.webhook_create(owner=alice, url=endpoint.url, events=["version.published"])
    with run_on_commit():
        services.webhook_send_test(webhook=hook, actor=alice)
    assert len(endpoint.received) == 3
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert (delivery.state, delivery.attempts, delivery.status_code) == (DeliveryState.FAILED, 3, 503)
    assert delivery.last_error.startswith("HTTP 503: the endpoint must answer with a 2xx status")
    # A redelivered task for a finished delivery posts nothing.
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk).state == DeliveryState.FAILED
    assert len(endpoint.received) == 3
    client.force_login(alice)
    page = client.get(hook.get_absolute_url()).content.decode()
    assert 'data-state="failed"' in page and "HTTP 503: the endpoint must answer" in page


def test_an_endpoint_that_does_not_answer_in_time_is_cut_off(alice, endpoint, run_on_commit, settings):
    settings.WEBHOOKS_TIMEOUT_S, settings.WEBHOOKS_MAX_ATTEMPTS = 0.5, 1
    endpoint.delay_s = 3
    hook = services.webhook_create(owner=alice, url=endpoint.url, events=["version.published"])
    with run_on_commit():
        services.webhook_send_test(webhook=hook, actor=alice)
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert (delivery.state, delivery.attempts, delivery.status_code) == (DeliveryState.FAILED, 1, None)
    assert delivery.last_error.startswith("No answer: no answer within 0.5 s")


@pytest.mark.parametrize("url, reason", [
    ("https://127.0.0.1/hook", "loopback"),
    ("https://localhost:8443/hook", "loopback"),
    ("https://10.1.2.3/hook", "private"),
    ("https://192.168.0.10/hook", "private"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://100.64.0.1/hook", "carrier-grade NAT"),
    ("https://[::1]/hook", "loopback v6"),
    ("https://[::ffff:127.0.0.1]/hook", "v4-mapped loopback"),
    ("https://[fd00::1]/hook", "unique local v6"),
    ("https://0.0.0.0/hook", "unspecified"),
])
def test_private_and_loopback_destinations_are_refused_in_production(alice, settings, url, reason):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    with pytest.raises(ValidationError) as refused:
        services.webhook_create(owner=alice, url=url, events=["version.published"])
    message = refused.value.message_dict["url"][0]
    assert "private, loopback or link-local address" in message and "public internet" in message, reason
    assert not Webhook.objects.exists()


def test_production_wants_https_and_a_real_url(alice, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    cases = {
        "http://93.184.216.34/hook": "Use https://",
        "ftp://93.184.216.34/hook": "Use an https:// URL.",
        "https://user:pw@93.184.216.34/hook": "Leave user names and passwords out of the URL",
        "https:///nohost": "The URL has no host name",
        "https://93.184.216.34:99999/": "The URL is not valid",
        "": "Enter the URL",
    }
    for url, expected in cases.items():
        with pytest.raises(ValidationError) as refused:
            services.webhook_create(owner=alice, url=url, events=["version.published"])
        assert refused.value.message_dict["url"][0].startswith(expected), url
    public = services.webhook_create(owner=alice, url="https://93.184.216.34/hook", events=["version.published"])
    assert public.secret.startswith("whsec_") and len(public.secret) > 40


def test_a_destination_that_turned_private_is_refused_at_delivery(alice, endpoint, run_on_commit, settings):
    hook = services.webhook_create(owner=alice, url=endpoint.url, events=["version.published"])  # development
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    with run_on_commit():
        services.webhook_send_test(webhook=hook, actor=alice)
    delivery = WebhookDelivery.objects.get(webhook=hook)
    assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, 1)  # not retried
    assert delivery.last_error.startswith("Refused:") and "Use https://" in delivery.last_error
    assert endpoint.received == []  # nothing reached the local server


def test_who_may_add_which_webhook(alice, charlie, datanet_of):
    datanet = datanet_of(alice)
    with pytest.raises(PermissionDenied):
        services.webhook_create(owner=charlie, url="http://127.0.0.1:9/x", events=["version.published"], datanet=datanet)
    with pytest.raises(ValidationError) as refused:
        services.webhook_create(owner=alice, url="http://127.0.0.1:9/x", events=["fine_tune.failed"], datanet=datanet)
    assert "Not available for a Datanet: fine_tune.failed" in refused.value.message_dict["events"][0]
    with pytest.raises(ValidationError) as refused:
        services.webhook_create(owner=alice, url="http://127.0.0.1:9/x", events=[])
    assert refused.value.message_dict["events"][0].startswith("Choose at least one event.")
    with pytest.raises(ValidationError) as refused:
        services.webhook_create(owner=alice, url="http://127.0.0.1:9/x", events=["webhook.test"])
    assert "Not available for your account: webhook.test" in refused.value.message_dict["events"][0]


def test_events_reach_the_right_webhooks_once(alice, dora, charlie, endpoint, run_on_commit, datanet_of):
    from datanets.models import Record
    from datanets.services import records_review, version_publish

    datanet = datanet_of(alice)
    own = services.webhook_create(owner=alice, url=endpoint.url + "/alice", events=["version.published"])
    doras = services.webhook_create(owner=dora, url=endpoint.url + "/dora", events=["contribution.validated"])
    strangers = services.webhook_create(owner=charlie, url=endpoint.url + "/charlie",
                                        events=["contribution.validated", "version.published"])
    switched_off = services.webhook_create(owner=alice, url=endpoint.url + "/off", events=["version.published"],
                                           datanet=datanet)
    Webhook.objects.filter(pk=switched_off.pk).update(active=False)
    contribution = upload(datanet, dora, run_on_commit)
    records_review(datanet=datanet, reviewer=alice, decision="accept",
                   record_ids=Record.objects.filter(contribution=contribution).values_list("pk", flat=True))
    with run_on_commit():
        version = version_publish(datanet=datanet, actor=alice)
    paths = sorted(r.path for r in endpoint.received)
    assert paths == ["/hooks/lineage/alice", "/hooks/lineage/dora"]
    published = next(r for r in endpoint.received if r.path.endswith("/alice")).json
    assert published["data"]["version"]["number"] == version.number == 1
    assert published["data"]["version"]["manifest_hash"] == version.manifest_hash
    assert not WebhookDelivery.objects.filter(webhook__in=[strangers, switched_off]).exists()
    assert {own.pk, doras.pk} == set(WebhookDelivery.objects.values_list("webhook_id", flat=True))
    # A dispatch delivered again finds its event recorded: nothing is made or sent twice.
    with run_on_commit():
        services.event_dispatch(kind="version.published", object_id=version.pk)
    assert Event.objects.filter(type="version.published").count() == 1
    assert len(endpoint.received) == 2


def test_webhook_pages_add_show_test_and_remove(alice, charlie, client, endpoint, run_on_commit, datanet_of):
    datanet = datanet_of(alice)
    client.force_login(alice)
    page = client.get(reverse("notifications:webhooks")).content.decode()
    assert f'<option value="{datanet.slug}">Datanet: {datanet.name}</option>' in page
    # Bad input comes back with what is wrong, and nothing is stored.
    refused = client.post(reverse("notifications:webhooks"), {"url": "not a url", "events": ["version.published"]})
    assert refused.status_code == 200 and "Use an https:// URL." in refused.content.decode()
    refused = client.post(reverse("notifications:webhooks"), {"url": endpoint.url, "datanet": datanet.slug,
                                                               "events": ["epoch.closed"]})
    assert "Not available for a Datanet: epoch.closed" in refused.content.decode()
    assert not Webhook.objects.exists()
    created = client.post(reverse("notifications:webhooks"), {"url": endpoint.url, "datanet": datanet.slug,
                                                              "events": ["version.published"], "description": "CI"})
    hook = Webhook.objects.get()
    assert created.status_code == 302 and created["Location"] == hook.get_absolute_url()
    assert (hook.owner, hook.datanet, hook.events, hook.description) == (alice, datanet, ["version.published"], "CI")
    detail = client.get(hook.get_absolute_url()).content.decode()
    assert hook.secret in detail and "Send test event" in detail and "Nothing sent yet" in detail

    # Someone else's webhook is not found, whatever they try.
    client.force_login(charlie)
    assert client.get(hook.get_absolute_url()).status_code == 404
    assert client.post(reverse("notifications:webhook_test", args=[hook.pk])).status_code == 404
    assert client.post(reverse("notifications:webhook_delete", args=[hook.pk])).status_code == 404
    assert hook.secret not in client.get(reverse("notifications:webhooks")).content.decode()

    client.force_login(alice)
    with run_on_commit():
        client.post(reverse("notifications:webhook_test", args=[hook.pk]))
    assert 'data-state="delivered"' in client.get(hook.get_absolute_url()).content.decode()
    assert client.post(reverse("notifications:webhook_delete", args=[hook.pk])).status_code == 302
    assert not Webhook.objects.exists() and not WebhookDelivery.objects.exists()
    assert AuditEvent.objects.filter(action="notifications.webhook_delete", object_id=str(hook.pk)).exists()


def test_delivery_checks_the_addresses_it_connects_to():
    """A name that passed the check when the webhook was added is checked again when posting: here `localhost`
    stands for a name whose DNS answer turned private after the check (DNS rebinding)."""
    from notifications.safe_http import UnsafeDestination, post_json

    with pytest.raises(UnsafeDestination, match="the host localhost now points at a non-public address"):
        post_json("https://localhost:1/hook", b"{}", {}, timeout_s=1, allow_private=False)
