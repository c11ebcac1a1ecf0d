"""Issue #19: the retrieval apps REST API (`/api/v1/retrieval-apps/`). An owner deploys, lists, reads, changes
(price, passages per answer, description, deployed flag) and retires an app with an API key; bad input is a 400 whose
`fields` say what to change and creates nothing; nobody else changes or retires the owner's app; the key's scopes
are checked; an app over a private Datanet is 404 to those who may not read it, whatever they send."""

import json

import pytest

from accounts.models import AuditEvent
from retrieval import services
from retrieval.models import AppState, RetrievalApp
from retrieval.selectors import index_for

pytestmark = pytest.mark.django_db

OPEN = 10**18
API = "/api/v1/retrieval-apps/"


@pytest.fixture
def handbook(indexed_handbook, alice):
    """Alice's public Documents Datanet, her PDF in it, version 1 published and indexed."""
    return indexed_handbook(alice, {alice: ["coastal-energy.pdf"]})


def ref(version):
    return {"datanet": version.datanet.slug, "number": version.number}


def deploy_body(version, **extra):
    return {"name": "Coastal answers", "versions": [ref(version)], **extra}


def test_the_owner_deploys_reads_changes_and_retires_an_app(handbook, alice, charlie, key_client, api_client):
    owner = key_client(alice, "read", "train")
    created = owner.post(API, deploy_body(handbook, price_per_inference=str(OPEN // 20), passages=3,
                                          description="From the coastal handbook."), format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    app = RetrievalApp.objects.get()
    assert created["Location"] == body["url"] and body["url"].endswith(f"{API}coastal-answers/")
    assert {k: body[k] for k in ("slug", "name", "description", "owner", "state", "deployed", "answer_mode",
                                 "causal_model", "passages", "price_per_inference", "app_hash")} == {
        "slug": "coastal-answers", "name": "Coastal answers", "description": "From the coastal handbook.",
        "owner": "Alice", "state": "active", "deployed": True, "answer_mode": "extractive", "causal_model": None,
        "passages": 3, "price_per_inference": str(OPEN // 20), "app_hash": app.app_hash}
    assert body["versions"] == [{"datanet": handbook.datanet.slug, "datanet_name": "Coastal energy handbook",
                                 "number": 1, "version_hash": handbook.manifest_hash, "private": False}]
    assert body["page_url"].endswith(app.get_absolute_url())
    assert AuditEvent.objects.filter(action="retrieval.app_deploy", object_id=str(app.pk), actor=alice).exists()

    # It answers at once, and anyone (even without signing in) reads it and finds it in the list.
    assert "coastal-answers" in {m["id"] for m in key_client(charlie, "infer").get("/v1/models").json()["data"]}
    assert api_client.get(f"{API}coastal-answers/").json()["slug"] == "coastal-answers"
    listed = key_client(charlie, "read").get(API).json()
    assert listed["count"] == 1 and listed["results"][0]["slug"] == "coastal-answers"
    assert key_client(charlie, "read").get(API, {"mine": "true"}).json()["count"] == 0

    # Price, passages per answer and description change; the passages change what answers, so the hash too.
    changed = owner.patch(f"{API}coastal-answers/", {"price_per_inference": "0", "passages": 5,
                                                     "description": "  Free now.  "}, format="json")
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["price_per_inference"], changed.json()["passages"], changed.json()["description"]) == (
        "0", 5, "Free now.")
    app.refresh_from_db()
    assert changed.json()["app_hash"] == app.app_hash != body["app_hash"]
    update = AuditEvent.objects.get(action="retrieval.app_update", object_id=str(app.pk))
    assert update.details["changes"]["passages"] == [3, 5]
    assert update.details["changes"]["price_per_inference"] == [str(OPEN // 20), "0"]
    # The same values again change nothing and record nothing.
    assert owner.patch(f"{API}coastal-answers/", {"passages": 5}, format="json").status_code == 200
    assert AuditEvent.objects.filter(action="retrieval.app_update").count() == 1

    # deployed: false retires it; the owner still reads it, others no longer find it; true deploys it again.
    retired = owner.patch(f"{API}coastal-answers/", {"deployed": False}, format="json").json()
    assert (retired["state"], retired["deployed"]) == ("retired", False)
    assert key_client(charlie, "read").get(f"{API}coastal-answers/").status_code == 404
    assert key_client(charlie, "read").get(API).json()["count"] == 0
    mine = owner.get(API, {"mine": "true"}).json()
    assert [a["slug"] for a in mine["results"]] == ["coastal-answers"]
    again = owner.patch(f"{API}coastal-answers/", {"deployed": True}, format="json")
    assert again.status_code == 200 and again.json()["deployed"] is True

    # DELETE retires it (its receipts stay; the owner can still read it); a second DELETE changes nothing.
    gone = owner.delete(f"{API}coastal-answers/")
    assert gone.status_code == 200 and gone.json()["state"] == "retired"
    assert owner.delete(f"{API}coastal-answers/").json()["state"] == "retired"
    assert AuditEvent.objects.filter(action="retrieval.app_retire", object_id=str(app.pk)).count() == 1
    ask = key_client(charlie, "infer").post("/v1/chat/completions", {
        "model": "coastal-answers", "messages": [{"role": "user", "content": "Harrowgate?"}]}, format="json")
    assert ask.status_code == 404 and ask.json()["error"]["code"] == "model_not_found"


def test_bad_deployments_are_400s_that_name_each_problem(handbook, publish, alice, charlie, key_client):
    owner = key_client(alice, "train")
    rows = publish(alice, [{"text": "my parcel is late", "label": "shipping"}])

    def refused(body):
        response = owner.post(API, body, format="json")
        assert response.status_code == 400, response.json()
        assert response.json()["code"] == "invalid"
        return response.json()["fields"]

    assert refused({"name": "Answers"})["versions"] == ["This field is required."]
    assert refused({"name": "Answers", "versions": []})["versions"] == [
        "Choose at least one published version of a Documents Datanet."]
    assert refused(deploy_body(handbook, passage=3))["passage"] == [
        "Unknown field. Accepted: name, versions, causal_model, passages, price_per_inference, description."]
    assert refused(deploy_body(handbook, price_per_inference="0.05"))["price_per_inference"] == [
        f"Prices are whole OPEN base units (1 OPEN = 10**18), not OPEN: 0.05 OPEN is \"{OPEN // 20}\"."]
    assert refused(deploy_body(handbook, price_per_inference="-1"))["price_per_inference"] == [
        "The price cannot be negative."]
    assert "passages" in refused(deploy_body(handbook, passages=0))
    assert "passages" in refused(deploy_body(handbook, passages="four"))
    assert refused({"name": "Answers", "versions": [{"datanet": "no-such-datanet", "number": 1},
                                                    {"datanet": handbook.datanet.slug, "number": 7}]})["versions"] == [
        "Item 1: “no-such-datanet” v1 does not exist or is not a Datanet you may read (GET /api/v1/datanets/ lists "
        "them).",
        f"Item 2: “{handbook.datanet.slug}” v7 does not exist or is not a Datanet you may read (GET "
        "/api/v1/datanets/ lists them)."]
    assert refused({"name": "Answers", "versions": [{"datanet": handbook.datanet.slug}]})["versions"] == [
        "Item 1: number: This field is required."]
    not_documents = refused({"name": "Answers", "versions": [ref(rows)]})["versions"]
    assert not_documents == [f"{rows}: Intents holds rows, not documents: only the versions of a Documents Datanet "
                             "have a search index."]
    assert refused(deploy_body(handbook, name="new"))["name"][0].startswith("“new” names a page")
    assert refused(deploy_body(handbook, causal_model="someone-elses"))["causal_model"] == [
        "Choose one of your own model versions (or none, for extractive answers)."]
    # A body that is not JSON is refused too, and names what it expected.
    not_json = owner.post(API, "name=Answers", content_type="application/x-www-form-urlencoded")
    assert not_json.status_code == 415 and not_json.json()["code"] == "unsupported_media_type"
    assert not RetrievalApp.objects.exists()

    # The name is taken once deployed; a second app of the same name is refused, the first one untouched.
    assert owner.post(API, deploy_body(handbook), format="json").status_code == 201
    assert refused(deploy_body(handbook))["name"] == ["The model name “coastal-answers” is taken; choose another name."]
    assert RetrievalApp.objects.count() == 1


def test_bad_changes_are_400s_and_change_nothing(handbook, alice, key_client):
    app = services.app_deploy(owner=alice, name="Coastal answers", versions=[handbook.pk], passages=4)
    owner = key_client(alice, "train")
    url = f"{API}{app.slug}/"

    def refused(body):
        response = owner.patch(url, body, format="json")
        assert response.status_code == 400, response.json()
        return response.json()

    assert refused({})["detail"] == "Send at least one of price_per_inference, passages, deployed, description."
    assert refused({"name": "Renamed"})["fields"]["name"] == [
        "Unknown field. Accepted: price_per_inference, passages, deployed, description."]
    assert "passages" in refused({"passages": 999})["fields"]
    assert refused({"price_per_inference": 0.5})["fields"]["price_per_inference"][0].startswith(
        "Send the price as a string of OPEN base units")
    assert refused({"deployed": "perhaps"})["fields"]["deployed"] == ["Must be a valid boolean."]
    app.refresh_from_db()
    assert (app.passages, int(app.price_per_inference), app.state) == (4, 0, AppState.ACTIVE)

    # A retired app whose index no longer verifies cannot answer again: the reason, and it stays retired.
    services.app_retire(app=app, actor=alice)
    services.index_fail_corrupt(index=index_for(version=handbook), reason="A stored file changed.")
    body = refused({"deployed": True})
    assert body["fields"]["deployed"] == [
        f"“{app.slug}” cannot answer again: {handbook}: The search index of v1 could not be built: A stored file "
        "changed. An admin can queue the build again. Deploy the app once its index is ready."]
    app.refresh_from_db()
    assert app.state == AppState.RETIRED


def test_only_the_owner_changes_and_only_owner_or_staff_retire(handbook, alice, bob, charlie, staff, key_client):
    app = services.app_deploy(owner=alice, name="Coastal answers", versions=[handbook.pk])
    url = f"{API}{app.slug}/"
    stranger = key_client(charlie, "read", "train")
    assert stranger.get(url).status_code == 200  # a deployed public app is anyone's to read
    # Not the owner: 403 before the body is even looked at, and nothing changes.
    for body in ({"price_per_inference": str(OPEN)}, {"deployed": False}, {"nonsense": 1}):
        denied = stranger.patch(url, body, format="json")
        assert denied.status_code == 403 and denied.json() == {
            "code": "permission_denied", "detail": "Only the app's owner changes it.", "fields": {}}
    retire = stranger.delete(url)
    assert retire.status_code == 403 and retire.json()["detail"] == "Only the app's owner retires it."
    app.refresh_from_db()
    assert (int(app.price_per_inference), app.state) == (0, AppState.ACTIVE)
    assert not AuditEvent.objects.filter(action__in=["retrieval.app_update", "retrieval.app_retire"]).exists()
    # Staff may retire it (not change it).
    admin = key_client(staff, "train")
    assert admin.patch(url, {"passages": 2}, format="json").status_code == 403
    assert admin.delete(url).json()["state"] == "retired"
    assert AuditEvent.objects.get(action="retrieval.app_retire").actor == staff


def test_scopes_and_sign_in(handbook, alice, api_client, key_client):
    app = services.app_deploy(owner=alice, name="Coastal answers", versions=[handbook.pk])
    url = f"{API}{app.slug}/"
    reader = key_client(alice, "read")
    assert reader.get(url).status_code == 200 and reader.get(API).status_code == 200
    for response in (reader.post(API, deploy_body(handbook, name="Other"), format="json"),
                     reader.patch(url, {"passages": 2}, format="json"), reader.delete(url)):
        assert response.status_code == 403
        assert response.json()["detail"] == "This API key lacks the 'train' scope needed here."
    trainer = key_client(alice, "train")  # reads need `read`
    assert trainer.get(url).status_code == 403 and trainer.get(API).status_code == 403
    assert trainer.patch(url, {"passages": 2}, format="json").status_code == 200
    # Without credentials: reads are public, writes need a sign-in, and "mine" has nobody to mean.
    assert api_client.get(API).json()["count"] == 1
    assert api_client.post(API, deploy_body(handbook, name="Other"), format="json").status_code == 401
    assert api_client.delete(url).status_code == 401
    assert api_client.get(API, {"mine": "true"}).status_code == 401
    app.refresh_from_db()
    assert (app.passages, app.state, RetrievalApp.objects.count()) == (2, AppState.ACTIVE, 1)


def test_an_app_over_a_private_datanet_is_404_to_those_who_may_not_read_it(indexed_handbook, alice, bob, dora,
                                                                             charlie, key_client):
    private = indexed_handbook(alice, {alice: ["coastal-energy.pdf"], dora: ["visitor-guide.html"]}, cast=True,
                               name="Private handbook", visibility="private")
    # A stranger cannot deploy over it: to him the version does not exist.
    stranger = key_client(charlie, "read", "train")
    denied = stranger.post(API, deploy_body(private, name="Stolen"), format="json")
    assert denied.status_code == 400 and denied.json()["fields"]["versions"] == [
        f"Item 1: “{private.datanet.slug}” v1 does not exist or is not a Datanet you may read (GET /api/v1/datanets/ "
        "lists them)."]
    # Its contributor member may (training access is open to members); so may its owner.
    member_app = key_client(dora, "train").post(API, deploy_body(private, name="Dora answers"), format="json")
    assert member_app.status_code == 201, member_app.json()
    created = key_client(alice, "read", "train").post(API, deploy_body(private, name="Private answers"),
                                                       format="json")
    assert created.status_code == 201 and created.json()["versions"][0]["private"] is True
    url = created.json()["url"]

    # To the stranger it does not exist, whatever he sends; to members it is listed and readable.
    for response in (stranger.get(url), stranger.patch(url, {"deployed": False}, format="json"),
                     stranger.patch(url, {"nonsense": 1}, format="json"), stranger.delete(url)):
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert stranger.get(API).json()["count"] == 0
    assert [a["slug"] for a in key_client(bob, "read").get(API).json()["results"]] == ["dora-answers",
                                                                                       "private-answers"]
    assert RetrievalApp.objects.get(slug="private-answers").state == AppState.ACTIVE


def test_the_schema_documents_the_retrieval_apps_api(client):
    paths = json.loads(client.get("/api/schema/", HTTP_ACCEPT="application/json").content)["paths"]
    assert set(paths[API]) >= {"get", "post"} and set(paths[API + "{slug}/"]) >= {"get", "patch", "delete"}
    patch = paths[API + "{slug}/"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert patch["$ref"].endswith("PatchedRetrievalAppUpdateRequest")
    assert {"400", "401", "403", "404", "429"} <= set(paths[API]["post"]["responses"])
