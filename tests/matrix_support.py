"""Request bodies shared by the permission matrices (`tests/datanets/`, `tests/models_registry/` and
`tests/hardening/`): one valid body (or query) per Datanets or ModelFactory URL that takes one, so the
matrices exercise the same writes."""


def datanet_request_bodies(*, users, pending, counter) -> dict:
    """{(url name, method): body}; `pending` are ids of rows waiting for review."""
    text = {"text": f"A freshly typed review number {counter}", "label": "positive"}
    return {
        ("datanets:members", "POST"): {"email": users["stranger"].email, "role": "contributor"},
        ("datanets:contribute", "POST"): {"row-0-text": text["text"], "row-0-label": "positive"},
        ("datanets:review_decide", "POST"): {"decision": "accept", "record_ids": [str(pk) for pk in pending]},
        ("datanets:review_row_decide", "POST"): {"decision": "accept"},
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
        ("datanets-api-version-search", "GET"): {"q": "review"},
        ("datanets-api-access-requests", "POST"): {"message": "please"},
        ("datanets-api-access-request-decide", "POST"): {"approve": True},
    }


def model_request_bodies(*, datanet_slug, version_number) -> dict:
    """{(url name, method): body} for the ModelFactory API URLs that take one (`tests/models_registry/` and
    `tests/hardening/`): a fine-tune of one Datanet version (never trained: the matrices roll every request
    back before its task is queued) and a price in OPEN base units."""
    return {
        ("fine-tunes-api-list", "POST"): {
            "name": "matrix", "base_model": "all-minilm-l6-v2",
            "datanet_versions": [{"datanet": datanet_slug, "number": version_number}],
            "epochs": 1, "batch_size": 8, "max_seq_length": 32,
        },
        ("models-api-detail", "PATCH"): {"description": "Checked by the permission matrix."},
    }
