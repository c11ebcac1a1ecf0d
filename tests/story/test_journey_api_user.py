"""Issue #22, the API user's whole journey on a fresh install: a new account in a real browser, then a program
talking to the live server over HTTP (httpx), as a developer's script would.

1. Kenji signs up (the starter credit `make run` grants) and reads the API reference (Redoc): it loads every
   script, stylesheet and font from this site, nothing from a CDN (#8), and its search finds an operation (the
   Content-Security-Policy lets it start its blob: worker);
2. he creates two API keys in the browser: a key without a scope is refused with what to do; "router" may read
   and infer, "reader" may only read; each secret is shown once and the list names each key's scopes;
3. as a program, with the router key: who am I, the public Datanets (the accepted rows counted once, #2), the
   model list of the REST API and of the OpenAI-compatible API, where the owner is a public display name and
   never an e-mail (#3); an answer from `/v1/chat/completions` and a classification from `/api/v1/inferences/`,
   each charged the model's price and carrying its attribution receipt, and both listed among his inferences;
4. what goes wrong answers in each API's JSON error shape: no key, the reader key on an inference route (its
   missing scope named), unknown addresses under `/api/v1/` and `/v1/` (#8), an unknown model;
5. back in the browser, the receipt of his answer and the model's page name the owner as the API did.

axe-core checks every page of the site he visits (tests/browser_support.assert_accessible)."""

import re
from urllib.parse import urlsplit

import httpx
import pytest
from browser_support import assert_accessible, sign_up
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from datanets.models import Record, RecordStatus
from inference.models import InferenceRecord
from models_registry import services as registry_services
from models_registry.models import BaseModel
from models_registry.training import build_tiny_encoder_model
from rewards.selectors import credit_balance

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OPEN = 10**18
EMAIL = "kenji.developer@example.org"
OWNER_EMAIL = "omar.owner@example.org"
PASSWORD = "a-long-and-unusual-passphrase-22"
PRICE = OPEN // 100  # 0.01 OPEN an answer
LABELS = ["billing", "shipping"]


@pytest.fixture
def fresh_install(client, settings, tmp_path, intent_rows, publish, model_server, django_capture_on_commit_callbacks):
    """Before Kenji comes: Omar signed up (with his e-mail only: no display name) and published a Datanet of
    support tickets; a small classifier fine-tuned on it is priced, deployed and loaded by the model server."""
    settings.REWARDS_STARTER_GRANT_OPEN = "10"  # what `make run` (DEBUG) grants a new account
    response = client.post("/accounts/signup/", {"email": OWNER_EMAIL, "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:2000]
    client.logout()
    omar = get_user_model().objects.get(email=OWNER_EMAIL)
    rows = intent_rows(3)
    version = publish(omar, rows, name="Support tickets")
    base_dir = build_tiny_encoder_model(tmp_path / "tiny-bert", [r["text"] for r in rows])
    base = BaseModel.objects.create(name="Tiny BERT", slug="tiny-bert", source_kind="path", source_ref=str(base_dir),
                                    architecture="bert", task_types=["text-classification"])
    with django_capture_on_commit_callbacks(execute=True):
        job = registry_services.fine_tune_create(owner=omar, name="Ticket router", base_model=base,
                                                 datanet_versions=[version], epochs=2, batch_size=8,
                                                 max_seq_length=24, eval_fraction=0.2)
    job.refresh_from_db()
    assert job.state == "succeeded", job.error
    model = registry_services.model_version_update(version=job.model_version, actor=omar, price_per_inference=PRICE)
    registry_services.model_version_set_deployed(version=model, actor=omar, deployed=True)
    report = model_server.sync()  # what serve_models' poll does under `make run`
    assert report.loaded == [model.slug], report.failed
    return {"omar": omar, "datanet": version.datanet, "model": model, "rows": len(rows)}


def create_key(page, name, *scopes):
    page.get_by_label("Name").fill(name)
    for scope in ("read", "infer", "contribute", "train"):
        checkbox = page.get_by_label(re.compile(rf"^\s*{scope}:"))
        if checkbox.count():
            checkbox.set_checked(scope in scopes)
    page.get_by_role("button", name="Create key").click()


def test_a_new_developer_creates_keys_and_uses_both_apis(live_server, page, fresh_install, screenshot):
    omar, datanet, model = fresh_install["omar"], fresh_install["datanet"], fresh_install["model"]
    host = urlsplit(live_server.url).netloc

    # 1. Sign up; the API documentation comes from this site alone.
    sign_up(page, live_server, EMAIL, PASSWORD)
    kenji = get_user_model().objects.get(email=EMAIL)
    assert credit_balance(user=kenji) == 10 * OPEN
    loaded, blocked, console = [], [], []
    page.on("requestfinished", lambda request: loaded.append(request.url))
    page.on("requestfailed", lambda request: blocked.append((request.url, request.failure)))
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"{live_server.url}/api/redoc/")
    expect(page.locator(".api-content h1").first).to_be_visible(timeout=30_000)  # Redoc drew the schema
    expect(page.get_by_text("/v1/chat/completions").first).to_be_attached()
    page.wait_for_load_state("networkidle")
    assert {urlsplit(url).netloc for url in loaded if url.startswith("http")} == {host}, loaded
    assert any(url.endswith("redoc.standalone.js") for url in loaded) and f"{live_server.url}/api/schema/" in loaded
    # The bundle's own "API docs by Redocly" badge asks cdn.redoc.ly; the page's Content-Security-Policy stops it
    # in the browser (and Redoc then hides the badge): nothing leaves for another host.
    assert all(failure == "csp" for _, failure in blocked), blocked
    assert_accessible(page)
    # Redoc's search runs in a web worker made from a blob: URL, which the policy's worker-src allows.
    page.get_by_role("search").get_by_role("textbox", name="Search").fill("chat completions")
    hit = page.locator("[data-role='search:results'] li[data-item-id$='v1_chat_completions_create']")
    expect(hit).to_be_visible(timeout=10_000)
    assert_accessible(page)
    hit.click()
    expect(page).to_have_url(re.compile(r"#tag/openai/operation/v1_chat_completions_create$"))
    refused = [text for text in console if "Content Security Policy" in text]
    assert all("cdn.redoc.ly" in text and "img-src" in text for text in refused), refused  # the badge alone

    # 2. Two keys: none without a scope; "router" reads and infers, "reader" only reads.
    page.goto(f"{live_server.url}/")
    page.locator(".account-menu summary").click()
    page.get_by_role("link", name="API keys").click()
    expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()
    assert_accessible(page)
    create_key(page, "no scopes")
    expect(page.locator("#keys-panel .errorlist")).to_contain_text("Choose at least one scope")
    expect(page.get_by_label("Name")).to_have_value("no scopes")
    assert not kenji.api_keys.exists()
    assert_accessible(page)
    create_key(page, "router", "read", "infer")
    router = page.locator("#new-key-secret").inner_text().strip()
    assert re.fullmatch(r"lin_\w+_\S+", router), router
    expect(page.locator("tr[data-key-name='router'] td").nth(2)).to_have_text("infer, read")
    assert_accessible(page)
    screenshot("journey-api-keys")
    create_key(page, "reader", "read")
    expect(page.locator("tr[data-key-name='reader'] td").nth(2)).to_have_text("read")
    expect(page.locator("#new-key-secret")).not_to_have_text(router)
    reader = page.locator("#new-key-secret").inner_text().strip()
    assert router not in page.content()  # each secret is shown once

    # 3. The program, with the router key.
    api = httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {router}"}, timeout=120)
    me = api.get("/api/v1/me/").json()
    assert (me["id"], me["display_name"], sorted(me["scopes"])) == (kenji.pk, kenji.public_name, ["infer", "read"])

    listed = api.get("/api/v1/datanets/").json()
    (tickets,) = [d for d in listed["results"] if d["slug"] == datanet.slug]
    accepted = Record.objects.filter(datanet=datanet, status=RecordStatus.ACCEPTED).count()
    assert tickets["accepted_rows"] == accepted == fresh_install["rows"]  # counted once (#2)
    assert tickets["owner"]["name"] == omar.public_name

    owner_name = omar.public_name
    assert owner_name and "@" not in owner_name
    rest_model = api.get(f"/api/v1/models/{model.slug}/").json()
    assert rest_model["owner"]["name"] == owner_name
    models = api.get("/v1/models")
    assert models.status_code == 200
    (listed_model,) = [m for m in models.json()["data"] if m["id"] == model.slug]
    assert listed_model["owned_by"] == owner_name
    assert api.get(f"/v1/models/{model.slug}").json()["owned_by"] == owner_name
    for body in (models.text, api.get(f"/api/v1/models/{model.slug}/").text, api.get("/api/v1/datanets/").text):
        assert OWNER_EMAIL not in body and "@" not in body.replace(EMAIL, "")  # never an e-mail (#3)

    chat = api.post("/v1/chat/completions", json={"model": model.slug,
                                                  "messages": [{"role": "user", "content": "refund my payment"}]})
    assert chat.status_code == 200, chat.text
    answer = chat.json()
    assert answer["object"] == "chat.completion" and answer["model"] == model.slug
    assert answer["choices"][0]["message"]["content"] in LABELS
    lineage = answer["lineage"]
    assert lineage["fee"] == str(PRICE) and lineage["receipt_id"]
    classified = api.post("/api/v1/inferences/", json={"model": model.slug, "input": "where is my parcel"})
    assert classified.status_code == 201, classified.text
    result = classified.json()
    assert result["label"] in LABELS and set(result["probabilities"]) == set(LABELS)
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert result["lineage"]["fee"] == str(PRICE)
    mine = api.get("/api/v1/inferences/").json()
    assert sorted(r["endpoint"] for r in mine["results"]) == ["chat.completions", "inferences"]
    assert {r["fee"] for r in mine["results"]} == {str(PRICE)}
    assert InferenceRecord.objects.filter(user=kenji, status="succeeded").count() == 2
    assert credit_balance(user=kenji) == 10 * OPEN - 2 * PRICE

    # 4. What goes wrong, in each API's error shape.
    anonymous = httpx.get(f"{live_server.url}/v1/models", timeout=30)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["message"]
    read_only = httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {reader}"}, timeout=30)
    assert read_only.get("/api/v1/me/").json()["scopes"] == ["read"]
    refused = read_only.post("/v1/chat/completions", json={"model": model.slug,
                                                           "messages": [{"role": "user", "content": "hello"}]})
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("permission_error", "missing_scope") and "infer" in error["message"]
    refused_rest = read_only.post("/api/v1/inferences/", json={"model": model.slug, "input": "hello"})
    assert refused_rest.status_code == 403 and refused_rest.json()["code"] == "permission_denied"
    for path in ("/api/v1/no-such-thing/", f"/api/v1/datanets/{datanet.slug}/no-such-part/extra/"):
        missing = api.get(path)
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/json")
        assert set(missing.json()) == {"code", "detail", "fields"} and missing.json()["code"] == "not_found"
    for method, path in (("GET", "/v1/no-such-route"), ("POST", "/v1/chat/")):
        missing = api.request(method, path)
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/json")
        error = missing.json()["error"]
        assert (error["type"], error["code"]) == ("invalid_request_error", "not_found") and error["message"]
    unknown_model = api.post("/v1/chat/completions", json={"model": "no-such-model",
                                                           "messages": [{"role": "user", "content": "hi"}]})
    assert unknown_model.status_code == 404 and unknown_model.json()["error"]["code"] == "model_not_found"
    assert credit_balance(user=kenji) == 10 * OPEN - 2 * PRICE  # refusals cost nothing
    api.close()
    read_only.close()

    # 5. In the browser: his answer's receipt, and the model's page naming its owner as the API did.
    page.goto(lineage["receipt_url"])
    expect(page.get_by_role("heading", name="Attribution receipt")).to_be_visible()
    expect(page.get_by_test_id("input")).to_have_text("refund my payment")
    assert OWNER_EMAIL not in page.locator("main").inner_text()
    assert_accessible(page)
    page.goto(f"{live_server.url}/models/{model.slug}/")
    owner = page.locator("dt", has_text="Owner").locator("xpath=following-sibling::dd[1]")
    expect(owner).to_have_text(owner_name)
    assert OWNER_EMAIL not in page.locator("main").inner_text()
    assert_accessible(page)
