"""Who may do what on every Datanets URL: a declared policy table checked against real requests.

Every URL under `/datanets/` (pages) and `/api/v1/datanets/` (REST API) is enumerated from the URL
resolver; a URL without a row in POLICY fails `test_every_datanets_url_has_a_policy`, so a new view
cannot ship without someone deciding who may use it.

Roles, the cast of tests/conftest.py: owner (alice), curator (bob), contributor (dora, a member with the contributor role), stranger
(charlie: signed in, not a member), anonymous. Pages are used with a browser session, the API with an
API key holding every scope (scopes have their own tests), so only the role decides. Each request runs
in a savepoint that is rolled back, so one role's write never changes what the next role finds.

Expected outcomes: a status code, or `login` (a redirect to the sign-in page: the page needs a signed-in
user before it looks at the Datanet, so the redirect says nothing about whether the Datanet exists).
The two halves of each row are the public Datanet and the private one, roles in ROLES order.
"""

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from matrix_support import datanet_request_bodies
from rest_framework.test import APIClient
from transaction_support import rollback_block

pytestmark = pytest.mark.django_db

ROLES = ("owner", "curator", "contributor", "stranger", "anonymous")
READ = "200 200 200 200 200 | 200 200 200 404 404"

# (url name, method): "public: owner curator contributor stranger anonymous | private: the same"
POLICY = {
    # --- Pages (datanets/urls.py) ---
    ("datanets:index", "GET"): "200 200 200 200 200 | 200 200 200 200 200",
    ("datanets:create", "GET"): "200 200 200 200 login | 200 200 200 200 login",
    ("datanets:detail", "GET"): READ,
    ("datanets:settings", "GET"): "200 403 403 403 login | 200 403 403 404 login",
    ("datanets:members", "POST"): "302 403 403 403 login | 302 403 403 404 login",
    ("datanets:contribute", "GET"): "200 200 200 200 login | 200 200 200 404 login",
    ("datanets:contribute", "POST"): "302 302 302 302 login | 302 302 302 404 login",
    ("datanets:contribution", "GET"): "200 200 200 404 login | 200 200 200 404 login",
    ("datanets:contribution_errors_csv", "GET"): "200 200 200 404 login | 200 200 200 404 login",
    ("datanets:review", "GET"): "200 200 403 403 login | 200 200 403 404 login",
    ("datanets:review_decide", "POST"): "302 302 403 403 login | 302 302 403 404 login",
    ("datanets:review_row_decide", "POST"): "302 302 403 403 login | 302 302 403 404 login",
    ("datanets:my_contributions", "GET"): "200 200 200 200 login | 200 200 200 200 login",  # one's own uploads
    ("datanets:versions", "GET"): READ,
    ("datanets:versions", "POST"): "302 302 403 403 403 | 302 302 403 404 404",
    ("datanets:version_diff", "GET"): READ,
    ("datanets:version", "GET"): READ,
    ("datanets:version_verify", "POST"): "200 200 200 200 login | 200 200 200 404 login",
    # Training access is "on approval" here: the contributor and the stranger have not been approved.
    ("datanets:version_download", "GET"): "200 200 403 403 403 | 200 200 403 404 404",
    ("datanets:rows", "GET"): READ,
    ("datanets:contributors", "GET"): READ,
    ("datanets:contributor", "GET"): READ,
    ("datanets:access_request", "POST"): "302 302 302 302 login | 302 302 302 404 login",
    ("datanets:access_decide", "POST"): "302 403 403 403 login | 302 403 403 404 login",
    # The search page of a version (retrieval/urls.py): these Datanets hold rows, so it says there is no search.
    ("retrieval:version_search", "GET"): READ,
    # --- REST API (datanets/api_urls.py) ---
    ("datanets-api-list", "GET"): "200 200 200 200 200 | 200 200 200 200 200",
    ("datanets-api-list", "POST"): "201 201 201 201 401 | 201 201 201 201 401",
    ("datanets-api-detail", "GET"): READ,
    ("datanets-api-detail", "PATCH"): "200 403 403 403 401 | 200 403 403 404 404",
    ("datanets-api-stats", "GET"): READ,
    ("datanets-api-leaderboard", "GET"): READ,
    ("datanets-api-members", "GET"): READ,
    ("datanets-api-members", "POST"): "200 403 403 403 401 | 200 403 403 404 404",
    ("datanets-api-member", "DELETE"): "204 403 403 403 401 | 204 403 403 404 404",
    ("datanets-api-contributions", "GET"): "200 200 200 200 401 | 200 200 200 404 404",
    ("datanets-api-contributions", "POST"): "202 202 202 202 401 | 202 202 202 404 404",
    ("datanets-api-contribution", "GET"): "200 200 200 404 401 | 200 200 200 404 404",
    ("datanets-api-contribution-errors", "GET"): "200 200 200 404 401 | 200 200 200 404 404",
    ("datanets-api-contribution-errors-csv", "GET"): "200 200 200 404 401 | 200 200 200 404 404",
    ("datanets-api-records", "GET"): READ,
    ("datanets-api-records-review", "POST"): "200 200 403 403 401 | 200 200 403 404 404",
    ("datanets-api-versions", "GET"): READ,
    ("datanets-api-versions", "POST"): "201 201 403 403 401 | 201 201 403 404 404",
    ("datanets-api-versions-diff", "GET"): READ,
    ("datanets-api-version", "GET"): READ,
    ("datanets-api-version-verify", "GET"): READ,
    ("datanets-api-version-download", "GET"): "200 200 403 403 401 | 200 200 403 404 404",
    ("datanets-api-access-requests", "GET"): "200 200 200 200 401 | 200 200 200 404 404",
    # Owner and curator may already train, so asking is refused with a reason (400).
    ("datanets-api-access-requests", "POST"): "400 400 201 201 401 | 400 400 201 404 404",
    ("datanets-api-access-request-decide", "POST"): "200 403 403 403 401 | 200 403 403 404 404",
    # Search (retrieval/api_urls.py): read access decides; a Datanet of rows is `not_searchable` (400).
    ("datanets-api-version-search", "GET"): "400 400 400 400 400 | 400 400 400 404 404",
}


def datanets_urls():
    """(route, name) of every URL under /datanets/ and /api/v1/datanets/, from the live resolver."""

    def walk(patterns, prefix, namespace):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = ":".join(filter(None, (namespace, pattern.namespace))) or None
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), f"{namespace}:{pattern.name}" if namespace else pattern.name

    return [
        (route, name)
        for route, name in walk(get_resolver().url_patterns, "", None)
        if route.startswith(("datanets/", "api/v1/datanets/"))
    ]


def test_every_datanets_url_has_a_policy():
    urls = datanets_urls()
    assert any(route.startswith("api/") for route, _ in urls) and any(route.startswith("datanets/") for route, _ in urls)
    unnamed = [route for route, name in urls if not name]
    assert not unnamed, f"Name these URLs so the policy table can refer to them: {unnamed}"
    declared = {name for name, _ in POLICY}
    missing = sorted({name for _, name in urls} - declared)
    assert not missing, f"Add a POLICY row (who may use it) for: {missing}"
    stale = sorted(declared - {name for _, name in urls})
    assert not stale, f"POLICY rows for URLs that no longer exist: {stale}"
    for expectation in POLICY.values():
        public, private = expectation.split("|")
        assert len(public.split()) == len(private.split()) == len(ROLES)


@pytest.fixture
def world(datanet_factory, upload_rows, rows_of, cast, cast_roles):
    """Both Datanets in the same state: two published versions, a contribution with pending rows, one
    accepted row not yet published, and a pending training-access request from the contributor."""
    from datanets.models import Record, RecordStatus
    from datanets.services import access_request_create, records_review, version_publish

    alice, bob, dora = cast.alice, cast.bob, cast.dora
    users = {role: cast.by_role[role] for role in ("owner", "curator", "contributor", "stranger")}
    users["anonymous"] = None
    datanets = {}
    for visibility in ("public", "private"):
        datanet = cast_roles(datanet_factory(alice, visibility=visibility, training_access="approval"))
        for start, count in ((0, 4), (4, 2)):
            contribution = upload_rows(datanet, dora, rows_of(count, start=start))
            ids = list(Record.objects.filter(contribution=contribution).values_list("pk", flat=True))
            records_review(datanet=datanet, reviewer=bob, record_ids=ids, decision="accept")
            version_publish(datanet=datanet, actor=bob, notes=f"rows {start}+")
        contribution = upload_rows(datanet, dora, rows_of(3, start=6) + [{"text": "bad", "label": "maybe"}])
        pending = list(Record.objects.filter(contribution=contribution).values_list("pk", flat=True))
        records_review(datanet=datanet, reviewer=bob, record_ids=pending[:1], decision="accept")
        assert Record.objects.filter(datanet=datanet, status=RecordStatus.PENDING).count() == 2
        datanets[visibility] = {
            "datanet": datanet,
            "contribution": contribution,
            "pending": pending[1:],
            "access_request": access_request_create(datanet=datanet, requester=dora, message="for a model"),
        }
    return {"users": users, "datanets": datanets}


def _kwargs(route, name, state, users):
    """URL arguments for a route, from the names of its parameters."""
    kwargs = {}
    if "<slug:slug>" in route:
        kwargs["slug"] = state["datanet"].slug
    if "<int:number>" in route:
        kwargs["number"] = 1
    if "<int:contribution_id>" in route or ("<int:pk>" in route and "contribution" in route):
        kwargs["contribution_id" if "<int:contribution_id>" in route else "pk"] = state["contribution"].pk
    if "<int:pk>" in route and "/rows/" in route:
        kwargs["pk"] = state["pending"][0]
    if "<int:request_id>" in route or ("<int:pk>" in route and "access" in route):
        kwargs["request_id" if "<int:request_id>" in route else "pk"] = state["access_request"].pk
    if "<int:user_id>" in route:
        kwargs["user_id"] = users["contributor"].pk
    if "<str:username>" in route:
        kwargs["username"] = users["contributor"].username
    if "<str:fmt>" in route:
        kwargs["fmt"] = "csv"
    return kwargs


def _body(name, method, state, users, counter):
    """A valid request body (or query) for each URL that takes one."""
    bodies = datanet_request_bodies(users=users, pending=state["pending"], counter=counter)
    return bodies.get((name, method), {})


def _clients(users, api_key_for):
    """Per role: a browser client (session) for pages and an API client (key with every scope)."""
    clients = {}
    for role, user in users.items():
        page, api = Client(), APIClient()
        if user is not None:
            page.force_login(user)
            _, secret = api_key_for(user, *django_settings.API_KEY_SCOPES)
            api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        clients[role] = (page, api)
    return clients


def _outcome(response):
    if response.status_code == 302 and response["Location"].startswith(resolve_url(django_settings.LOGIN_URL)):
        return "login"
    if getattr(response, "streaming", False):
        b"".join(response.streaming_content)  # run the whole stream: errors surface here, not later
    return str(response.status_code)


@pytest.mark.parametrize("visibility", ["public", "private"])
def test_permission_matrix(visibility, world, api_key_for):
    users, state = world["users"], world["datanets"][visibility]
    clients = _clients(users, api_key_for)
    routes = {name: route for route, name in datanets_urls()}
    mismatches, counter = [], 0
    for (name, method), expectation in POLICY.items():
        half = expectation.split("|")[0 if visibility == "public" else 1].split()
        path = reverse(name, kwargs=_kwargs(routes[name], name, state, users))
        is_api = path.startswith("/api/")
        for role, expected in zip(ROLES, half):
            counter += 1
            client = clients[role][1 if is_api else 0]
            body = _body(name, method, state, users, counter)
            with rollback_block():
                if method == "GET":
                    response = client.get(path, body)
                elif is_api:
                    response = getattr(client, method.lower())(path, body, format="json")
                else:
                    response = getattr(client, method.lower())(path, body)
                outcome = _outcome(response)
                transaction.set_rollback(True)  # the next role finds the same world
            if outcome != expected:
                mismatches.append(f"{method} {path} as {role}: expected {expected}, got {outcome}")
    assert not mismatches, "\n".join(mismatches)
