"""Issue #22, item 8: the API documentation works offline, and unknown API paths answer the API's JSON.

- `/api/docs/` (Swagger UI) and `/api/redoc/` load every script, stylesheet and font from this site:
  drf-spectacular's Redoc page asked Google Fonts for its typefaces, and Swagger UI's default online
  validator badge loads an image from swagger.io.
- An unknown `/api/...` path answers `{"code", "detail", "fields"}` with 404 and an unknown `/v1/...` path
  OpenAI's `{"error": {...}}`, with DEBUG on (Django's HTML debug page before) as with DEBUG off.
"""

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db

DOCS = ["/api/docs/", "/api/redoc/"]
SITE_HOSTS = {"testserver"}
EXTERNAL = re.compile(r"""(?:https?:)?//([a-z0-9.-]+\.[a-z]{2,}|localhost)(?::\d+)?[/"')\s]""", re.I)


class Resources(HTMLParser):
    """Every URL the page would fetch: scripts, stylesheets, icons, images, preconnects."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe") and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])


def _fetched_urls(html: str) -> list[str]:
    parser = Resources()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize("path", DOCS)
def test_docs_pages_load_nothing_from_another_host(client, path):
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    hosts = {match.group(1).lower() for match in EXTERNAL.finditer(html)}
    assert hosts <= SITE_HOSTS, f"{path} names other hosts: {sorted(hosts - SITE_HOSTS)}"
    urls = _fetched_urls(html)
    assert any(url.endswith(".js") for url in urls), urls  # the page does load its viewer
    for url in urls:
        parts = urlsplit(url)
        assert not parts.netloc or parts.netloc in SITE_HOSTS, f"{path} loads {url}"
        assert parts.path.startswith(django_settings.STATIC_URL), f"{path} loads {url}, not a static file"
        local = finders.find(parts.path[len(django_settings.STATIC_URL):])
        assert local, f"{url} is not among this site's static files"
        if parts.path.endswith(".css"):
            with open(local, encoding="utf-8") as fh:
                css = fh.read()
            assert not re.search(r"""(?:url\(\s*["']?|@import\s+["'])(?:https?:)?//""", css), f"{url} imports from the web"


def test_swagger_ui_does_not_ask_the_online_validator(client):
    html = client.get("/api/docs/").content.decode()
    assert re.search(r'"validatorUrl":\s*null', html), "Swagger UI would load its validator badge from swagger.io"


def test_redoc_page_still_renders_the_schema_from_this_site(client):
    html = client.get("/api/redoc/").content.decode()
    assert "Redoc.init" in html or "<redoc" in html
    assert "/api/schema/" in html
    assert "fonts.googleapis.com" not in html and "fonts.gstatic.com" not in html


@pytest.mark.parametrize("debug", [True, False], ids=["debug-on", "debug-off"])
@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("path", ["/api/v1/no-such-thing/", "/api/v1/datanets/some-slug/no-such-part/extra/",
                                  "/api/nothing", "/api/v2/datanets/"])
def test_unknown_api_paths_answer_the_api_error_shape(client, settings, debug, method, path):
    settings.DEBUG = debug
    response = getattr(client, method)(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = response.json()
    assert set(body) == {"code", "detail", "fields"} and body["code"] == "not_found" and body["detail"]


@pytest.mark.parametrize("debug", [True, False], ids=["debug-on", "debug-off"])
@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("path", ["/v1/no-such-route", "/v1/models/extra/part", "/v1/chat/"])
def test_unknown_openai_paths_answer_openais_error_shape(client, settings, debug, method, path):
    settings.DEBUG = debug
    response = getattr(client, method)(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "not_found" and error["message"]


@pytest.mark.parametrize("debug", [True, False], ids=["debug-on", "debug-off"])
def test_known_api_paths_and_site_pages_keep_their_answers(client, settings, debug, alice, datanet_for_404):
    settings.DEBUG = debug
    # A known API view's own 404 keeps its JSON, and the site's pages keep their HTML 404 page.
    missing = client.get("/api/v1/datanets/no-such-datanet/")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    page = client.get("/no/such/page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
    listed = client.get("/api/v1/datanets/")
    assert listed.status_code == 200 and listed.json()["count"] == 1


@pytest.fixture
def datanet_for_404(alice):
    from datanets.services import datanet_create

    return datanet_create(owner=alice, name="Known", task_type="text", label_set=[])
