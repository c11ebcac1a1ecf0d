"""Issue #22, item 2: the Datanets list page and `GET /api/v1/datanets/` show the same accepted-row count
as the Datanet's own page, its API detail and its `/stats/`, whoever reads them.

The seeded Datanets doubled (444 against 222): the list joined the members table (for "Datanets you can
see") and the rows table (for the count) in one query, so every accepted row was counted once per member.
The Datanet here has an owner, a curator and a contributor member, several contributions and two versions.
"""

import re

import pytest
from django.test import Client
from rest_framework.test import APIClient

from datanets import selectors
from datanets.models import Record, RecordStatus
from datanets.services import membership_set, records_review

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy_datanet(datanet_factory, published_version, upload_rows, rows_of, alice, bob, dora, cast_roles):
    """The cast's roles (owner alice, curator bob, contributor dora); three contributions, two versions, some
    rows rejected and some still pending."""
    datanet = cast_roles(datanet_factory(alice, name="Busy reviews"))
    published_version(datanet, alice, rows=rows_of(6))                    # v1: 6 rows
    upload_rows(datanet, dora, rows_of(5, start=100, prefix="Dora"))
    dora_rows = list(Record.objects.filter(datanet=datanet, contributor=dora).values_list("pk", flat=True))
    records_review(datanet=datanet, reviewer=bob, record_ids=dora_rows[:3], decision="accept")
    records_review(datanet=datanet, reviewer=bob, record_ids=dora_rows[3:4], decision="reject", reason="Off topic.")
    # v2 accepts what is pending (Bob's 4 rows and Dora's last one): 6 + 4 + 4 rows.
    published_version(datanet, bob, rows=rows_of(4, start=200, prefix="Bob"))
    upload_rows(datanet, bob, rows_of(2, start=300, prefix="Later"))          # pending: not counted
    return datanet


def _readers(cast):
    readers = {"anonymous": (Client(), APIClient())}
    for name in ("owner", "curator", "contributor", "stranger"):
        user = cast.by_role[name]
        page_client, api_client = Client(), APIClient()
        page_client.force_login(user)
        api_client.force_authenticate(user)
        readers[name] = (page_client, api_client)
    return readers


def test_list_page_api_list_and_detail_agree_on_accepted_rows(busy_datanet, cast):
    expected = Record.objects.filter(datanet=busy_datanet, status=RecordStatus.ACCEPTED).count()
    assert expected == 14 and busy_datanet.versions.count() == 2
    assert busy_datanet.memberships.count() >= 3  # the members that used to multiply the count
    assert selectors.datanet_stats(datanet=busy_datanet)["accepted"] == expected

    for role, (page_client, api_client) in _readers(cast).items():
        listing = page_client.get("/datanets/").content.decode()
        card = listing[listing.index("Busy reviews"):]
        shown = int(re.search(r"(\d+) accepted rows", card).group(1))
        assert shown == expected, f"{role}: the list page shows {shown} accepted rows, not {expected}"

        detail_page = page_client.get(busy_datanet.get_absolute_url()).content.decode()
        assert re.search(rf"<strong>{expected}</strong> accepted rows", detail_page), role

        api_list = api_client.get("/api/v1/datanets/").json()["results"]
        listed = next(d for d in api_list if d["slug"] == busy_datanet.slug)
        assert listed["accepted_rows"] == expected, f"{role}: the API list says {listed['accepted_rows']}"
        assert [d["slug"] for d in api_list].count(busy_datanet.slug) == 1

        detail = api_client.get(f"/api/v1/datanets/{busy_datanet.slug}/").json()
        assert detail["accepted_rows"] == expected, role
        stats = api_client.get(f"/api/v1/datanets/{busy_datanet.slug}/stats/").json()
        assert stats["accepted"] == expected, role


def test_search_lists_each_visible_datanet_once_with_its_own_count(busy_datanet, datanet_factory, published_version,
                                                                     rows_of, alice, dora, make_user):
    owen = make_user("owen")  # outside the cast: a second owner, whose Datanet alice cannot see
    private = datanet_factory(owen, name="Owen's private reviews", visibility="private")
    membership_set(datanet=private, actor=owen, user=dora, role="contributor")
    published_version(private, owen, rows=rows_of(3, start=500, prefix="Private"))

    as_dora = {d.slug: d.accepted for d in selectors.datanet_search(user=dora)}
    assert as_dora == {busy_datanet.slug: 14, private.slug: 3}
    assert len(selectors.datanet_search(user=dora)) == 2
    assert {d.slug for d in selectors.datanet_search(user=alice)} == {busy_datanet.slug}  # not a member of the private one
