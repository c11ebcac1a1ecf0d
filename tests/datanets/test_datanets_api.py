"""Round trips through the Datanets REST API with real API keys, services and the (eager) validation task.

Roles, the cast of tests/conftest.py: alice owns the Datanets, bob curates them, dora is their contributor member,
charlie is a stranger (who may still upload to a Datanet open to anyone).
"""

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datanets.models import Contribution, Record, RecordStatus, RowError

pytestmark = pytest.mark.django_db

API = "/api/v1/datanets/"


def url(datanet, suffix=""):
    slug = datanet if isinstance(datanet, str) else datanet.slug
    return f"{API}{slug}/{suffix}"


@pytest.fixture
def contribute(django_capture_on_commit_callbacks):
    """POST a contribution through the API and let the validation task run as it would after commit."""

    def post(client, datanet, **body):
        with django_capture_on_commit_callbacks(execute=True):
            if "file" in body:
                return client.post(url(datanet, "contributions/"), body, format="multipart")
            return client.post(url(datanet, "contributions/"), body, format="json")

    return post


@pytest.fixture
def curated(datanet_factory, alice, cast_roles):
    """A public Datanet owned by alice, with bob as curator and dora as contributor member."""
    return cast_roles(datanet_factory(alice))


# --- Datanets: create, list, read, update --------------------------------------------------------------


def test_create_with_contribute_scope_makes_the_caller_owner(alice, key_client):
    client = key_client(alice, "contribute")
    response = client.post(
        API,
        {"name": "Support tickets", "task_type": "text-classification", "label_set": ["bug", "question"],
         "tags": ["Support", "tickets"], "visibility": "private"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["slug"] == "support-tickets"
    assert body["owner"]["username"] == "alice"
    assert body["label_set"] == ["bug", "question"] and body["tags"] == ["support", "tickets"]
    assert body["url"].endswith("/api/v1/datanets/support-tickets/")
    # The owner reads it back with a read key; it is private, so it is hers alone.
    assert key_client(alice, "read").get(url("support-tickets")).status_code == 200


def test_create_needs_the_contribute_scope(alice, key_client, api_client):
    response = key_client(alice, "read").post(API, {"name": "X", "task_type": "text"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert "'contribute' scope" in response.json()["detail"]
    assert api_client.post(API, {"name": "X", "task_type": "text"}, format="json").status_code == 401


def test_create_rejects_an_unknown_task_type(alice, key_client):
    response = key_client(alice, "contribute").post(API, {"name": "X", "task_type": "summarisation"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and "task_type" in body["fields"]


def test_create_rejects_a_single_label(alice, key_client):
    response = key_client(alice, "contribute").post(
        API, {"name": "X", "task_type": "text-classification", "label_set": ["only"]}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert "two labels" in " ".join(body["fields"]["label_set"])


def test_create_rejects_labels_on_a_task_without_labels(alice, key_client):
    response = key_client(alice, "contribute").post(
        API, {"name": "X", "task_type": "instruction", "label_set": ["a", "b"]}, format="json"
    )
    assert response.status_code == 400
    assert "label_set" in response.json()["fields"]


def test_list_shows_public_and_own_private_and_searches(alice, charlie, datanet_factory, api_client, key_client):
    datanet_factory(alice, name="Movie reviews", tags=["film"])
    datanet_factory(alice, name="Recipes", task_type="instruction", label_set=[], tags=["food"])
    datanet_factory(alice, name="Secret diaries", visibility="private", task_type="text", label_set=[])

    def names(response):
        assert response.status_code == 200
        return sorted(d["name"] for d in response.json()["results"])

    assert names(api_client.get(API)) == ["Movie reviews", "Recipes"]
    assert names(key_client(charlie, "read").get(API)) == ["Movie reviews", "Recipes"]
    assert names(key_client(alice, "read").get(API)) == ["Movie reviews", "Recipes", "Secret diaries"]
    assert names(api_client.get(API, {"q": "movie"})) == ["Movie reviews"]
    assert names(api_client.get(API, {"task_type": "instruction"})) == ["Recipes"]
    assert names(api_client.get(API, {"tag": "food"})) == ["Recipes"]
    assert names(api_client.get(API, {"q": "secret"})) == []


def test_list_needs_the_read_scope_with_an_api_key(alice, key_client):
    response = key_client(alice, "infer").get(API)
    assert response.status_code == 403
    assert "'read' scope" in response.json()["detail"]


def test_private_datanet_is_404_for_strangers_and_anonymous(alice, charlie, datanet_factory, api_client, key_client):
    datanet = datanet_factory(alice, visibility="private")
    for client in (api_client, key_client(charlie, "read", "contribute", "train")):
        for suffix in ("", "stats/", "leaderboard/", "members/", "records/", "versions/"):
            response = client.get(url(datanet, suffix))
            assert response.status_code == 404, suffix
            assert response.json()["code"] == "not_found"
    # Even a key without the read scope learns nothing: 404, not 403.
    assert key_client(charlie, "infer").get(url(datanet)).status_code == 404


def test_public_datanet_is_readable_anonymously(alice, datanet_factory, api_client):
    datanet = datanet_factory(alice)
    response = api_client.get(url(datanet))
    assert response.status_code == 200
    assert response.json()["task_type"] == "text-classification"


def test_owner_updates_settings_and_others_cannot(alice, bob, charlie, curated, key_client):
    response = key_client(alice, "contribute").patch(
        url(curated), {"summary": "Now with more reviews", "tags": ["a", "b"]}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["summary"] == "Now with more reviews" and response.json()["tags"] == ["a", "b"]
    for user in (bob, charlie):
        response = key_client(user, "contribute").patch(url(curated), {"summary": "mine"}, format="json")
        assert response.status_code == 403
        assert "owner" in response.json()["detail"]
    response = key_client(alice, "read").patch(url(curated), {"summary": "x"}, format="json")
    assert response.status_code == 403 and "'contribute' scope" in response.json()["detail"]


def test_update_refuses_fixed_and_invalid_settings(alice, curated, key_client):
    client = key_client(alice, "contribute")
    response = client.patch(url(curated), {"task_type": "text"}, format="json")
    assert response.status_code == 400 and "task_type" in response.json()["fields"]
    response = client.patch(url(curated), {"label_set": ["positive"]}, format="json")
    assert response.status_code == 400 and "label_set" in response.json()["fields"]
    response = client.patch(url(curated), {"visibility": "secret"}, format="json")
    assert response.status_code == 400 and "visibility" in response.json()["fields"]


def test_stats_and_leaderboard(alice, charlie, curated, upload_rows, rows_of, api_client):
    upload_rows(curated, charlie, rows_of(3))
    stats = api_client.get(url(curated, "stats/"))
    assert stats.status_code == 200
    assert stats.json()["pending"] == 3 and stats.json()["total"] == 3 and stats.json()["contributors"] == 1
    board = api_client.get(url(curated, "leaderboard/"))
    assert board.status_code == 200
    assert board.json() == [
        {"user_id": charlie.pk, "username": "charlie", "name": "Charlie", "submitted": 3, "accepted": 0,
         "acceptance_rate": None}
    ]


# --- Members ----------------------------------------------------------------------------------------


def test_owner_adds_changes_and_removes_members(alice, bob, charlie, datanet_factory, key_client):
    datanet = datanet_factory(alice, visibility="private")
    owner = key_client(alice, "read", "contribute")
    response = owner.post(url(datanet, "members/"), {"user_id": bob.pk, "role": "contributor"}, format="json")
    assert response.status_code == 200, response.json()
    response = owner.post(url(datanet, "members/"), {"username": "bob", "role": "curator"}, format="json")
    assert response.json()["role"] == "curator"
    members = owner.get(url(datanet, "members/")).json()
    assert sorted((m["user"]["username"], m["role"]) for m in members) == [("alice", "owner"), ("bob", "curator")]
    # bob can now see the private Datanet; charlie still cannot.
    assert key_client(bob, "read").get(url(datanet)).status_code == 200
    assert key_client(charlie, "read").get(url(datanet)).status_code == 404
    assert owner.delete(url(datanet, f"members/{bob.pk}/")).status_code == 204
    assert key_client(bob, "read").get(url(datanet)).status_code == 404


def test_only_the_owner_manages_members(alice, bob, charlie, curated, key_client):
    curator = key_client(bob, "contribute")
    response = curator.post(url(curated, "members/"), {"user_id": charlie.pk, "role": "curator"}, format="json")
    assert response.status_code == 403
    assert curator.delete(url(curated, f"members/{bob.pk}/")).status_code == 403
    owner = key_client(alice, "contribute")
    assert owner.post(url(curated, "members/"), {"user_id": 99999, "role": "curator"}, format="json").status_code == 400
    response = owner.post(url(curated, "members/"), {"user_id": charlie.pk, "role": "owner"}, format="json")
    assert response.status_code == 400 and "role" in response.json()["fields"]
    assert owner.delete(url(curated, f"members/{charlie.pk}/")).status_code == 404
    response = owner.delete(url(curated, f"members/{alice.pk}/"))
    assert response.status_code == 400 and "owner" in response.json()["fields"]["user_id"][0]


# --- Contributions ----------------------------------------------------------------------------------


def test_json_rows_contribution_is_accepted_then_validated(charlie, curated, key_client, contribute, rows_of):
    client = key_client(charlie, "read", "contribute")
    response = contribute(client, curated, rows=rows_of(4))
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["state"] in ("received", "validating", "in_review")
    assert response["Location"] == body["status_url"]
    assert body["status_url"].endswith(f"/api/v1/datanets/{curated.slug}/contributions/{body['id']}/")
    status = client.get(body["status_url"]).json()
    assert status["state"] == "in_review" and status["progress_percent"] == 100
    assert status["counts"] == {"total": 4, "accepted": 4, "rejected": 0, "duplicate": 0, "near_duplicate": 0}
    assert status["error_code"] == "" and status["source"] == "api_rows"
    assert Record.objects.filter(contribution_id=body["id"], contributor=charlie).count() == 4


def test_contributing_needs_the_contribute_scope(charlie, curated, key_client, api_client, rows_of):
    response = key_client(charlie, "read").post(url(curated, "contributions/"), {"rows": rows_of(1)}, format="json")
    assert response.status_code == 403 and "'contribute' scope" in response.json()["detail"]
    response = api_client.post(url(curated, "contributions/"), {"rows": rows_of(1)}, format="json")
    assert response.status_code == 401
    assert not Contribution.objects.exists()


def test_members_only_datanet_refuses_strangers(alice, charlie, datanet_factory, key_client, rows_of):
    datanet = datanet_factory(alice, contribution_policy="members")
    response = key_client(charlie, "contribute").post(url(datanet, "contributions/"), {"rows": rows_of(1)}, format="json")
    assert response.status_code == 403
    assert "members" in response.json()["detail"].lower()


def test_malformed_json_body_and_rows(charlie, curated, key_client):
    client = key_client(charlie, "contribute")
    response = client.post(url(curated, "contributions/"), data='{"rows": [', content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"
    response = client.post(url(curated, "contributions/"), {"rows": "text,label\nhi,positive"}, format="json")
    assert response.status_code == 400 and "rows" in response.json()["fields"]
    response = client.post(url(curated, "contributions/"), {"rows": []}, format="json")
    assert response.status_code == 400 and "rows" in response.json()["fields"]
    response = client.post(url(curated, "contributions/"), {}, format="json")
    assert response.status_code == 400 and "file" in response.json()["detail"]
    assert not Contribution.objects.exists()


def test_rows_that_are_not_objects_are_rejected_row_by_row(charlie, curated, key_client, contribute, rows_of):
    client = key_client(charlie, "read", "contribute")
    response = contribute(client, curated, rows=[rows_of(1)[0], ["not", "an", "object"], 42])
    assert response.status_code == 202
    status = client.get(response.json()["status_url"]).json()
    assert status["counts"]["accepted"] == 1 and status["counts"]["rejected"] == 2
    errors = client.get(response.json()["errors_url"]).json()["results"]
    assert [e["row"] for e in errors] == [2, 3]


def test_empty_file_is_refused(charlie, curated, key_client):
    client = key_client(charlie, "contribute")
    empty = SimpleUploadedFile("rows.csv", b"", content_type="text/csv")
    response = client.post(url(curated, "contributions/"), {"file": empty}, format="multipart")
    assert response.status_code == 400
    assert "empty" in response.json()["detail"]
    assert not Contribution.objects.exists()


def test_csv_with_bad_rows_keeps_good_rows_and_lists_each_bad_line(
    charlie, curated, key_client, contribute
):
    content = (
        b"text,label\n"                                    # line 1
        b"The kettle boils fast and quietly,positive\n"    # line 2: good
        b"Broke after a week,terrible\n"                   # line 3: unknown label
        b",negative\n"                                     # line 4: empty text
        b"\"Sturdy lamp, bright light\",positive\n"         # line 5: good
        b"Charger stopped charging,\n"                     # line 6: empty label
        b"Umbrella survived a storm,negative\n"            # line 7: good
    )
    client = key_client(charlie, "read", "contribute")
    upload = SimpleUploadedFile("reviews.csv", content, content_type="text/csv")
    response = contribute(client, curated, file=upload)
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["source"] == "api_file" and body["file_name"] == "reviews.csv"
    status = client.get(body["status_url"]).json()
    assert status["state"] == "in_review"
    assert status["counts"]["total"] == 6 and status["counts"]["accepted"] == 3 and status["counts"]["rejected"] == 3
    errors = client.get(body["errors_url"]).json()
    assert errors["count"] == 3
    assert [(e["row"], e["line"], e["code"]) for e in errors["results"]] == [
        (2, 3, "unknown_label"), (3, 4, "empty_text"), (5, 6, "empty_text"),
    ]
    assert all(e["message"].startswith(f"Line {e['line']}") for e in errors["results"])
    kept = sorted(Record.objects.filter(contribution_id=body["id"]).values_list("line_number", flat=True))
    assert kept == [2, 5, 7]
    # The same errors as a CSV download.
    download = client.get(url(curated, f"contributions/{body['id']}/errors.csv"))
    assert download.status_code == 200 and download["Content-Type"].startswith("text/csv")
    assert "attachment" in download["Content-Disposition"]
    table = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert table[0] == ["row", "line", "code", "message", "text", "label", "raw"]  # then each row's content
    assert [row[:3] for row in table[1:]] == [["2", "3", "unknown_label"], ["3", "4", "empty_text"], ["5", "6", "empty_text"]]
    assert [row[4:6] for row in table[1:]] == [["Broke after a week", "terrible"], ["", "negative"],
                                               ["Charger stopped charging", ""]]


def test_errors_csv_neutralises_formula_cells(charlie, curated, key_client, contribute):
    """A message is written by the engine, but a cell a spreadsheet would run must never reach one."""
    client = key_client(charlie, "read", "contribute")
    response = contribute(client, curated, rows=[{"text": "fine", "label": "positive"}, {"text": "x", "label": "=1+1"}])
    contribution_id = response.json()["id"]
    # Row errors are created only by the validation service; give one a formula-looking message the way
    # a future engine message could, to prove the download neutralises rather than trusts content.
    RowError.objects.filter(contribution_id=contribution_id).update(message="=HYPERLINK(\"http://evil\")")
    download = client.get(url(curated, f"contributions/{contribution_id}/errors.csv"))
    rows = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert rows[1][3] == "'=HYPERLINK(\"http://evil\")"


def test_a_file_that_cannot_be_read_fails_with_a_code_and_message(charlie, curated, key_client, contribute):
    client = key_client(charlie, "read", "contribute")
    header_only = SimpleUploadedFile("empty.csv", b"text,label\n", content_type="text/csv")
    response = contribute(client, curated, file=header_only)
    assert response.status_code == 202
    status = client.get(response.json()["status_url"]).json()
    assert status["state"] == "failed"
    assert status["error_code"] == "no_rows" and "no data rows" in status["error_message"]
    assert status["counts"]["accepted"] == 0 and not Record.objects.exists()


def test_exact_duplicates_are_reported_and_not_stored_twice(charlie, alice, curated, key_client, contribute, rows_of):
    client = key_client(charlie, "read", "contribute")
    rows = rows_of(3)
    first = contribute(client, curated, rows=rows + [rows[0]])  # the 4th row repeats the 1st
    status = client.get(first.json()["status_url"]).json()
    assert status["counts"] == {"total": 4, "accepted": 3, "rejected": 0, "duplicate": 1, "near_duplicate": 0}
    errors = client.get(first.json()["errors_url"]).json()["results"]
    assert [(e["row"], e["code"]) for e in errors] == [(4, "duplicate")]
    # The same rows again, from someone else: every one is a duplicate of a stored row.
    second = contribute(key_client(alice, "read", "contribute"), curated, rows=rows)
    status = key_client(alice, "read").get(second.json()["status_url"]).json()
    assert status["counts"]["duplicate"] == 3 and status["counts"]["accepted"] == 0
    stored = Record.objects.filter(datanet=curated)
    assert stored.count() == 3
    assert stored.values("content_hash").distinct().count() == 3
    duplicate_of = list(RowError.objects.filter(contribution_id=second.json()["id"]).values_list("duplicate_of", flat=True))
    assert sorted(duplicate_of) == sorted(stored.values_list("pk", flat=True))


def test_near_duplicates_are_kept_and_flagged(bob, charlie, curated, key_client, contribute):
    client = key_client(charlie, "read", "contribute")
    text = "The blender is loud but it crushes ice in seconds and cleans up easily after smoothies every morning."
    response = contribute(client, curated, rows=[
        {"text": text, "label": "positive"},
        {"text": text.replace("every morning", "every single morning"), "label": "positive"},
    ])
    status = client.get(response.json()["status_url"]).json()
    assert status["counts"]["accepted"] == 2 and status["counts"]["near_duplicate"] == 1
    flagged = key_client(bob, "read").get(url(curated, "records/"), {"flag": "near_duplicate"}).json()
    assert flagged["count"] == 1 and flagged["results"][0]["near_duplicate_of"] is not None
    assert flagged["results"][0]["near_duplicate_score"] >= 0.8
    # Charlie is not a curator: he sees accepted rows only, and none are accepted yet.
    assert client.get(url(curated, "records/"), {"flag": "near_duplicate"}).json()["count"] == 0


def test_contributions_are_private_to_their_contributor_and_curators(
    alice, bob, charlie, dora, curated, key_client, contribute, rows_of
):
    mine = contribute(key_client(charlie, "read", "contribute"), curated, rows=rows_of(1)).json()
    contribute(key_client(dora, "read", "contribute"), curated, rows=rows_of(1, start=10))
    charlie_view = key_client(charlie, "read").get(url(curated, "contributions/")).json()
    assert [c["id"] for c in charlie_view["results"]] == [mine["id"]]
    assert key_client(dora, "read").get(mine["status_url"]).status_code == 404
    assert key_client(dora, "read").get(mine["errors_url"]).status_code == 404
    for curator in (alice, bob):
        assert key_client(curator, "read").get(url(curated, "contributions/")).json()["count"] == 2
        assert key_client(curator, "read").get(mine["status_url"]).status_code == 200


def test_contribution_reads_need_sign_in(charlie, curated, upload_rows, rows_of, api_client):
    contribution = upload_rows(curated, charlie, rows_of(1))
    assert api_client.get(url(curated, "contributions/")).status_code == 401
    assert api_client.get(url(curated, f"contributions/{contribution.pk}/")).status_code == 401


# --- Rows and review --------------------------------------------------------------------------------


def test_records_curators_see_the_queue_others_see_accepted_rows(alice, bob, charlie, curated, key_client,
                                                                  upload_rows, rows_of, api_client):
    upload_rows(curated, charlie, rows_of(4))
    curator = key_client(bob, "read", "contribute")
    queue = curator.get(url(curated, "records/")).json()
    assert queue["count"] == 4 and {r["status"] for r in queue["results"]} == {"pending"}
    assert api_client.get(url(curated, "records/")).json()["count"] == 0
    first_two = [r["id"] for r in queue["results"][:2]]
    response = curator.post(url(curated, "records/review/"), {"decision": "accept", "record_ids": first_two}, format="json")
    assert response.status_code == 200 and response.json() == {"changed": 2}
    public = api_client.get(url(curated, "records/")).json()
    assert sorted(r["id"] for r in public["results"]) == sorted(first_two)
    assert api_client.get(url(curated, "records/"), {"status": "pending"}).json()["count"] == 0
    assert curator.get(url(curated, "records/"), {"status": "all"}).json()["count"] == 4
    assert curator.get(url(curated, "records/"), {"status": "accepted", "label": "positive"}).json()["count"] == 1
    assert curator.get(url(curated, "records/"), {"contributor": "charlie", "q": "Review 3"}).json()["count"] == 1
    assert curator.get(url(curated, "records/"), {"status": "weird"}).status_code == 400


def test_review_by_filter_with_a_reason(bob, charlie, curated, key_client, upload_rows, rows_of):
    upload_rows(curated, charlie, rows_of(4))
    curator = key_client(bob, "contribute", "read")
    response = curator.post(
        url(curated, "records/review/"), {"decision": "reject", "filter": {"label": "negative"}}, format="json"
    )
    assert response.status_code == 400 and "reason" in response.json()["fields"]
    response = curator.post(
        url(curated, "records/review/"),
        {"decision": "reject", "reason": "Not a product review", "filter": {"label": "negative"}},
        format="json",
    )
    assert response.json() == {"changed": 2}
    rejected = Record.objects.filter(datanet=curated, status=RecordStatus.REJECTED)
    assert set(rejected.values_list("label", flat=True)) == {"negative"}
    assert set(rejected.values_list("reason", flat=True)) == {"Not a product review"}
    # Repeating the decision changes nothing.
    again = curator.post(url(curated, "records/review/"),
                         {"decision": "reject", "reason": "x", "filter": {"status": "rejected"}}, format="json")
    assert again.json() == {"changed": 0}


def test_only_curators_review(alice, charlie, curated, key_client, upload_rows, rows_of):
    contribution = upload_rows(curated, charlie, rows_of(2))
    ids = list(Record.objects.filter(contribution=contribution).values_list("pk", flat=True))
    response = key_client(charlie, "contribute").post(
        url(curated, "records/review/"), {"decision": "accept", "record_ids": ids}, format="json"
    )
    assert response.status_code == 403 and "curators" in response.json()["detail"]
    response = key_client(alice, "read").post(
        url(curated, "records/review/"), {"decision": "accept", "record_ids": ids}, format="json"
    )
    assert response.status_code == 403 and "'contribute' scope" in response.json()["detail"]
    bad = key_client(alice, "contribute").post(url(curated, "records/review/"), {"decision": "maybe", "record_ids": ids},
                                              format="json")
    assert bad.status_code == 400 and "decision" in bad.json()["fields"]
    both = key_client(alice, "contribute").post(url(curated, "records/review/"),
                                               {"decision": "accept", "record_ids": ids, "filter": {}}, format="json")
    assert both.status_code == 400
    assert not Record.objects.filter(status=RecordStatus.ACCEPTED).exists()


# --- Versions: review → publish → verify → diff → download --------------------------------------------


def test_review_publish_verify_diff_and_download(alice, bob, charlie, curated, key_client, contribute, api_client):
    contributor = key_client(charlie, "read", "contribute")
    rows = [
        {"text": "=SUM(A1:A9) is what the spreadsheet said", "label": "negative"},
        {"text": "Lovely quiet kettle", "label": "positive"},
        {"text": "Backpack strap snapped", "label": "negative"},
    ]
    contribute(contributor, curated, rows=rows)
    curator = key_client(bob, "read", "contribute")
    ids = [r["id"] for r in curator.get(url(curated, "records/")).json()["results"]]
    assert curator.post(url(curated, "records/review/"), {"decision": "accept", "record_ids": ids[:2]},
                        format="json").json() == {"changed": 2}

    response = curator.post(url(curated, "versions/"), {"notes": "First cut"}, format="json")
    assert response.status_code == 201, response.json()
    v1 = response.json()
    assert v1["number"] == 1 and v1["row_count"] == 2 and v1["notes"] == "First cut" and len(v1["manifest_hash"]) == 64
    # Nothing new: publishing again is refused with a reason.
    again = curator.post(url(curated, "versions/"), {}, format="json")
    assert again.status_code == 400 and "nothing new" in again.json()["detail"]

    curator.post(url(curated, "records/review/"), {"decision": "accept", "record_ids": ids[2:]}, format="json")
    v2 = curator.post(url(curated, "versions/"), {"notes": "More"}, format="json").json()
    assert v2["number"] == 2 and v2["row_count"] == 3

    listing = api_client.get(url(curated, "versions/")).json()
    assert [v["number"] for v in listing["results"]] == [2, 1]
    detail = api_client.get(url(curated, "versions/1/")).json()
    assert detail["manifest_hash"] == v1["manifest_hash"] and isinstance(detail["manifest"], dict)
    assert api_client.get(url(curated, "versions/9/")).status_code == 404

    verify = api_client.get(url(curated, "versions/1/verify/"))
    assert verify.status_code == 200 and verify.json() == {"ok": True, "problems": []}

    diff = api_client.get(url(curated, "versions/diff/"), {"from": 1, "to": 2})
    assert diff.status_code == 200, diff.json()
    assert diff.json()["from"] == 1 and diff.json()["to"] == 2
    assert diff.json()["added"] == 1 and diff.json()["removed"] == 0
    assert diff.json()["added_by_contributor"] == {"Charlie": 1}  # the public name, as on every page
    assert api_client.get(url(curated, "versions/diff/"), {"from": 1}).status_code == 400
    assert api_client.get(url(curated, "versions/diff/"), {"from": 1, "to": 7}).status_code == 404

    download = key_client(charlie, "read").get(url(curated, "versions/2/download/"), {"format": "csv"})
    assert download.status_code == 200, download.content
    assert download["Content-Type"].startswith("text/csv")
    assert f'filename="{curated.slug}-v2.csv"' in download["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert len(table) == 3
    texts = {row["text"] for row in table}
    assert "'=SUM(A1:A9) is what the spreadsheet said" in texts  # neutralised for spreadsheets
    assert "=SUM(A1:A9) is what the spreadsheet said" not in texts

    # Downloading is what training needs: anonymous callers must sign in first.
    assert api_client.get(url(curated, "versions/2/download/")).status_code == 401
    jsonl = key_client(charlie, "read").get(url(curated, "versions/2/download/"), {"format": "jsonl"})
    assert jsonl.status_code == 200
    lines = [json.loads(line) for line in b"".join(jsonl.streaming_content).decode().splitlines() if line]
    assert "=SUM(A1:A9) is what the spreadsheet said" in {line["text"] for line in lines}  # byte-faithful

    parquet = key_client(alice, "read").get(url(curated, "versions/1/download/"), {"format": "parquet"})
    assert parquet.status_code == 200 and b"".join(parquet.streaming_content)[:4] == b"PAR1"
    assert key_client(alice, "read").get(url(curated, "versions/1/download/"), {"format": "xlsx"}).status_code == 400


def test_publishing_is_for_curators(charlie, curated, key_client, published_version, bob, rows_of):
    published_version(curated, bob, rows=rows_of(2))
    response = key_client(charlie, "contribute").post(url(curated, "versions/"), {}, format="json")
    assert response.status_code == 403
    response = key_client(bob, "read").post(url(curated, "versions/"), {}, format="json")
    assert response.status_code == 403 and "'contribute' scope" in response.json()["detail"]


# --- Training access --------------------------------------------------------------------------------


def test_training_access_request_approve_then_download(alice, bob, charlie, datanet_factory, key_client,
                                                       published_version, rows_of, cast_roles):
    datanet = cast_roles(datanet_factory(alice, training_access="approval"))
    published_version(datanet, bob, rows=rows_of(2))
    stranger = key_client(charlie, "read", "train")
    denied = stranger.get(url(datanet, "versions/1/download/"))
    assert denied.status_code == 403 and "training access" in denied.json()["detail"]

    wrong_scope = key_client(charlie, "contribute").post(url(datanet, "access-requests/"), {}, format="json")
    assert wrong_scope.status_code == 403 and "'train' scope" in wrong_scope.json()["detail"]
    response = stranger.post(url(datanet, "access-requests/"), {"message": "Fine-tuning a support bot"}, format="json")
    assert response.status_code == 201, response.json()
    request_id = response.json()["id"]
    assert response.json()["state"] == "pending"

    owner = key_client(alice, "read", "contribute")
    assert [r["id"] for r in owner.get(url(datanet, "access-requests/")).json()] == [request_id]
    assert [r["id"] for r in stranger.get(url(datanet, "access-requests/")).json()] == [request_id]
    assert key_client(bob, "read").get(url(datanet, "access-requests/")).json() == []

    for user in (bob, charlie):
        response = key_client(user, "contribute").post(
            url(datanet, f"access-requests/{request_id}/decide/"), {"approve": True}, format="json"
        )
        assert response.status_code == 403
    assert owner.post(url(datanet, f"access-requests/{request_id}/decide/"), {}, format="json").status_code == 400
    assert owner.post(url(datanet, "access-requests/999/decide/"), {"approve": True}, format="json").status_code == 404
    response = owner.post(url(datanet, f"access-requests/{request_id}/decide/"), {"approve": True}, format="json")
    assert response.status_code == 200 and response.json()["state"] == "approved"
    assert response.json()["decided_by"]["username"] == "alice"

    assert stranger.get(url(datanet, "versions/1/download/"), {"format": "jsonl"}).status_code == 200
    # Already allowed: a second request is refused with a reason.
    again = stranger.post(url(datanet, "access-requests/"), {}, format="json")
    assert again.status_code == 400 and "already" in again.json()["detail"]


def test_openapi_schema_lists_the_datanets_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    for path in (
        "/api/v1/datanets/", "/api/v1/datanets/{slug}/contributions/", "/api/v1/datanets/{slug}/records/review/",
        "/api/v1/datanets/{slug}/versions/{number}/download/", "/api/v1/datanets/{slug}/access-requests/",
    ):
        assert path in paths
        assert all(op["tags"] == ["datanets"] for op in paths[path].values())
