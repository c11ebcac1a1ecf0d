"""Request bodies shared by the permission matrices (`tests/datanets/` and `tests/hardening/`): one valid
body (or query) per Datanets URL that takes one, so both matrices exercise the same writes."""


def datanet_request_bodies(*, users, pending, counter) -> dict:
    """{(url name, method): body}; `pending` are ids of rows waiting for review."""
    text = {"text": f"A freshly typed review number {counter}", "label": "positive"}
    return {
        ("datanets:members", "POST"): {"email": users["stranger"].email, "role": "contributor"},
        ("datanets:contribute", "POST"): {"row-0-text": text["text"], "row-0-label": "positive"},
        ("datanets:review_decide", "POST"): {"decision": "accept", "record_ids": [str(pk) for pk in pending]},
        ("datanets:versions", "POST"): {"notes": "matrix"},
        ("datanets:version_diff", "GET"): {"from": 1, "to": 2},
        ("datanets:access_request", "POST"): {"message": "please"},
        ("datanets:access_decide", "POST"): {"approve": "1"},
        ("datanets-api-list", "POST"): {"name": f"Matrix {counter}", "task_type": "text"},
        ("datanets-api-detail", "PATCH"): {"summary": "changed"},
        ("datanets-api-members", "POST"): {"user_id": users["stranger"].pk, "role": "contributor"},
        ("datanets-api-contributions", "POST"): {"rows": [text]},
        ("datanets-api-records-review", "POST"): {"decision": "accept", "record_ids": pending},
        ("datanets-api-versions", "POST"): {"notes": "matrix"},
        ("datanets-api-versions-diff", "GET"): {"from": 1, "to": 2},
        ("datanets-api-version-download", "GET"): {"format": "csv"},
        ("datanets-api-access-requests", "POST"): {"message": "please"},
        ("datanets-api-access-request-decide", "POST"): {"approve": True},
    }
