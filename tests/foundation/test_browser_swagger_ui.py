"""Swagger UI at /api/docs/ (the account menu's "API docs") in a real browser: it draws the operations from this
site alone, passes axe-core in each state a reader reaches (operations open, "Try it out", a response, the schemas,
the authorization dialog), and keeps its deep links (templates/api/swagger_ui.html, static/js/swagger_ui.js)."""

import re
from urllib.parse import urlsplit

import pytest
from browser_support import assert_accessible, login
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ME = "#operations-accounts-api_v1_me_retrieve"  # GET /api/v1/me/: who the caller is


def open_docs_from_menu(page, live_server, user):
    login(page, live_server, user)
    page.locator(".account-menu summary").click()
    page.get_by_role("link", name="API docs").click()
    expect(page.locator(ME)).to_be_visible(timeout=30_000)  # Swagger UI fetched the schema and drew it


def test_swagger_ui_draws_the_operations_from_this_site_and_passes_axe(live_server, page, alice):
    host = urlsplit(live_server.url).netloc
    loaded, failed = [], []
    page.on("requestfinished", lambda request: loaded.append(request.url))
    page.on("requestfailed", lambda request: failed.append((request.url, request.failure)))

    open_docs_from_menu(page, live_server, alice)
    page.wait_for_load_state("networkidle")
    assert urlsplit(page.url).path == "/api/docs/"
    expect(page).to_have_title("Lineage API · API docs")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("link[rel=icon]").get_attribute("href").endswith("/img/favicon.svg")
    # The operations list: every tag's operations, each with its method and path.
    assert page.locator(".opblock").count() > 20
    expect(page.locator(f"{ME} .opblock-summary-method")).to_have_text("GET")
    expect(page.locator(f"{ME} .opblock-summary-path")).to_have_attribute("data-path", "/api/v1/me/")
    # Nothing from a CDN: Swagger UI, its stylesheet, the schema and Lineage's additions all come from this host.
    assert {urlsplit(url).netloc for url in loaded if url.startswith("http")} == {host}, loaded
    assert not failed, failed
    paths = {urlsplit(url).path for url in loaded}
    assert {"/api/schema/", "/static/js/swagger_ui.js", "/static/css/swagger_ui.css"} <= paths, paths
    assert any(path.endswith("swagger-ui-bundle.js") for path in paths), paths
    # The operation toggles hold no links (a link inside a button is two controls in one).
    assert page.locator(".opblock-summary-control a[href]").count() == 0
    assert_accessible(page)

    # Open "me", try it out: the browser's session answers with Alice's account.
    page.locator(f"{ME} .opblock-summary-control").click()
    expect(page).to_have_url(re.compile(r"#/accounts/api_v1_me_retrieve$"))  # deep linking still sets the URL
    page.locator(ME).get_by_role("button", name="Try it out").click()
    page.locator(ME).get_by_role("button", name="Execute").click()
    response = page.locator(f"{ME} .responses-wrapper .live-responses-table")
    expect(response.locator("tbody .response-col_status").first).to_have_text("200")
    expect(response.locator(".highlight-code pre")).to_contain_text(alice.email)
    # The highlighter's inline token colours (numbers #d36363 on #333: 3.45:1) give way to the block's light text,
    # whatever the response holds (axe met a user id only once the database had given out four-digit ids).
    token_colours = response.locator(".highlight-code .microlight span").evaluate_all(
        "spans => spans.map(span => [getComputedStyle(span).color, getComputedStyle(span.closest('.microlight')).color])")
    assert token_colours and all(token == block for token, block in token_colours), token_colours
    assert {block for _, block in token_colours} <= {"rgb(245, 245, 245)", "rgb(255, 255, 255)"}, token_colours
    assert_accessible(page)  # parameters, the request URL, the live response and its code blocks

    # A POST with a request body: its schema, then its editor, which is labelled.
    post = page.locator(".opblock-post").first
    post.locator(".opblock-summary-control").click()
    post.get_by_role("tab", name="Schema", exact=True).first.click()
    expect(post.locator(".body-param__example, .model-example .model-box").first).to_be_visible()
    assert_accessible(page)
    post.get_by_role("button", name="Try it out").click()
    expect(post.get_by_role("textbox", name="Request body")).to_be_visible()
    assert_accessible(page)

    # The schemas section opens on the first press and its models expand.
    schemas = page.get_by_role("button", name="Schemas")
    schemas.click()
    expect(schemas).to_have_attribute("aria-expanded", "true")
    page.locator(".models .model-box-control").first.click()
    assert_accessible(page)

    # The authorization dialog, and its close button by name.
    page.locator(".scheme-container").get_by_role("button", name="Authorize").click()
    expect(page.get_by_role("heading", name="Available authorizations")).to_be_visible()
    assert_accessible(page)
    page.locator(".modal-ux-header").get_by_role("button", name="Close").click()
    expect(page.get_by_role("heading", name="Available authorizations")).to_have_count(0)


def test_a_deep_link_opens_its_operation(live_server, page, alice):
    login(page, live_server, alice)
    page.goto(f"{live_server.url}/api/docs/#/accounts/api_v1_me_retrieve")
    expect(page.locator(f"{ME} .opblock-summary-control")).to_have_attribute("aria-expanded", "true", timeout=30_000)
    expect(page.locator(ME).get_by_role("button", name="Try it out")).to_be_visible()


def test_anonymous_visitors_read_the_docs_too(live_server, page):
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(ME)).to_be_visible(timeout=30_000)
    assert_accessible(page)
