"""Small things a new user notices (#22 comforts): a favicon on every page, plurals spelled right in admin."""

from django.contrib.staticfiles import finders


def test_every_page_links_a_favicon_that_exists(client, db):
    page = client.get("/").content.decode()
    assert '<link rel="icon" href="/static/img/favicon.svg"' in page
    found = finders.find("img/favicon.svg")
    assert found and open(found, encoding="utf-8").read().lstrip().startswith("<svg")


def test_admin_spells_epoch_summaries(admin_client):
    index = admin_client.get("/admin/").content.decode()
    assert "Epoch summaries" in index and "summarys" not in index.lower()
