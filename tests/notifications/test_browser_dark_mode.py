"""Issue #18, item 5: the site follows the system's dark mode. In Chromium emulating `prefers-color-scheme:
dark`, pages draw on the dark palette (not just some of them: the page, cards, form fields) and axe-core finds
no serious or critical problem on them, colour contrast included; the same pages in the light scheme keep
the light palette. The webhook pages are driven through: add a webhook, send a test event, see it logged."""

import re

import pytest
from browser_support import assert_accessible, login
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DARK_BG, LIGHT_BG = "rgb(18, 20, 23)", "rgb(251, 251, 250)"
DARK_CARD, DARK_INK = "rgb(27, 31, 36)", "rgb(231, 233, 236)"


def style(page, selector, prop):
    return page.eval_on_selector(selector, f"e => getComputedStyle(e).{prop}")


@pytest.fixture
def dark_page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900}, color_scheme="dark")
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def test_pages_follow_the_dark_scheme_and_stay_accessible(live_server, dark_page, page, alice, datanet_of, endpoint):
    datanet = datanet_of(alice)
    login(dark_page, live_server, alice)
    for path in ("/", "/datanets/", f"/datanets/{datanet.slug}/", "/rewards/", "/notifications/",
                 "/notifications/webhooks/", "/account/keys/"):
        dark_page.goto(f"{live_server.url}{path}")
        assert dark_page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
        assert style(dark_page, "body", "backgroundColor") == DARK_BG, path
        assert style(dark_page, "body", "color") == DARK_INK, path
        assert style(dark_page, ".site-header", "backgroundColor") == DARK_CARD, path
        assert_accessible(dark_page)

    # Add a webhook through the form (its fields are dark too), send a test event, read the log.
    dark_page.goto(f"{live_server.url}/notifications/webhooks/")
    assert style(dark_page, "#id_url", "backgroundColor") == "rgb(15, 18, 21)"
    dark_page.get_by_label("URL").fill(endpoint.url)
    dark_page.get_by_label(re.compile(r"^\s*version\.published:")).check()
    dark_page.get_by_role("button", name="Add webhook").click()
    expect(dark_page.get_by_role("heading", name="Webhook", exact=True)).to_be_visible()
    assert_accessible(dark_page)
    dark_page.get_by_role("button", name="Send test event").click()
    expect(dark_page.locator("#messages")).to_contain_text("Test event queued")
    dark_page.reload()
    expect(dark_page.locator("#deliveries tr[data-state='delivered']")).to_have_count(1)
    dark_page.locator("details summary", has_text="Signing secret").click()
    assert_accessible(dark_page)
    assert len(endpoint.received) == 1 and endpoint.received[0].json["type"] == "webhook.test"

    # The light scheme is untouched.
    login(page, live_server, alice)
    page.goto(f"{live_server.url}/notifications/")
    assert style(page, "body", "backgroundColor") == LIGHT_BG
    assert_accessible(page)
