"""Exact de-duplication (content hash) and near-duplicate detection (MinHash LSH)."""

import io
import random

import numpy as np
import pytest
from datasketch import MinHashLSH

from datanets.ingest import (
    DatanetSchema,
    KnownContent,
    NearDupIndex,
    RejectionCode,
    UploadScreener,
    content_hash,
    iter_rows,
    normalise_text,
    optimal_lsh_params,
    shingle_jaccard,
)

SCHEMA = DatanetSchema("text-classification", ("pos", "neg"))
SENTENCE = "The committee approved the new budget for public libraries after a long debate on Tuesday."
EDITED = "The committee approved the new budget for public libraries after a long debate on Monday."
UNRELATED = [
    "Heavy rain is expected across the northern valleys throughout the weekend.",
    "She replaced the bicycle chain and adjusted the rear derailleur before the race.",
    "Quantum dots emit light at wavelengths determined by their physical size.",
]


def screened(csv_text, screener):
    rows = iter_rows(io.BytesIO(csv_text.encode()), "u.csv", SCHEMA)
    return list(screener.screen_all(rows))


def test_normalisation_and_hash_ignore_case_whitespace_and_unicode_form():
    assert normalise_text("  Cafe\u0301\n\tAU  lait ") == "Café AU lait"
    assert normalise_text("Café AU lait", casefold=True) == "café au lait"
    a = content_hash({"text": "Hello   World", "label": "pos"}, SCHEMA)
    assert a == content_hash({"text": "hello world", "label": "neg"}, SCHEMA)  # label excluded
    assert a != content_hash({"text": "hello, world", "label": "pos"}, SCHEMA)


def test_exact_duplicates_within_upload_and_label_conflicts():
    results = screened(
        "text,label\nHello world,pos\nhello   WORLD,pos\nHello world,neg\nsomething else,neg\n",
        UploadScreener(SCHEMA),
    )
    assert results[0].accepted and not results[0].flags
    assert results[1].rejection.code is RejectionCode.DUPLICATE
    assert "row 1 of this upload" in results[1].rejection.message
    assert results[2].accepted and results[2].flags[0].kind == "label_conflict"
    assert results[2].flags[0].upload_row_number == 1
    assert results[3].accepted and not results[3].flags


def test_exact_duplicates_against_existing_hashes():
    known = content_hash({"text": "already here"}, SCHEMA)
    other = content_hash({"text": "labelled pos"}, SCHEMA)
    text = "text,label\nAlready here,pos\nlabelled pos,neg\nlabelled pos,pos\nbrand new,pos\n"
    plain = screened(text, UploadScreener(SCHEMA, existing={known}))
    assert [r.rejection.code if r.rejection else None for r in plain] == [
        RejectionCode.DUPLICATE,
        None,
        None,
        None,
    ]
    rich = UploadScreener(SCHEMA, existing={known: KnownContent(7, "pos"), other: KnownContent(9, "pos")})
    results = screened(text, rich)
    assert results[0].rejection.code is RejectionCode.DUPLICATE and "row 7" in results[0].rejection.message
    assert results[1].flags[0].kind == "label_conflict" and results[1].flags[0].existing_row_id == 9
    # The third row repeats the second within the upload with another label: a conflict, not a drop.
    assert results[2].accepted and results[2].flags[0].upload_row_number == 2
    lookup_calls = []
    screened(text, UploadScreener(SCHEMA, existing=lambda h: lookup_calls.append(h)))
    assert len(lookup_calls) == 3  # one per distinct content


def test_near_dup_index_finds_light_edit_and_not_unrelated():
    index = NearDupIndex.build([(1, SENTENCE)] + [(i + 2, t) for i, t in enumerate(UNRELATED)])
    match = index.query(EDITED)
    assert match is not None and match.row_id == 1
    assert match.estimated_jaccard == pytest.approx(shingle_jaccard(SENTENCE, EDITED), abs=0.12)
    assert all(index.query(t + " ") is not None for t in UNRELATED)  # each finds itself
    assert index.query("A completely different remark about cooking rice in a clay pot.") is None
    assert index.query_row(1) is None  # no other row resembles it


def test_near_dup_index_incremental_updates_and_serialisation(tmp_path):
    index = NearDupIndex(threshold=0.7)
    index.add_many((i + 1, t) for i, t in enumerate(UNRELATED))
    assert index.query(EDITED) is None
    index.add("row-x", SENTENCE)
    assert index.query(EDITED).row_id == "row-x"
    path = tmp_path / "datanet-1.neardup"
    index.save(path)
    loaded = NearDupIndex.load(path)
    assert (loaded.threshold, loaded.num_perm, len(loaded)) == (0.7, 128, 4)
    assert loaded.query(EDITED) == index.query(EDITED)
    loaded.add(99, EDITED)
    assert loaded.query_row(99).row_id == "row-x"
    with pytest.raises(ValueError):
        loaded.add(99, "again")


def test_minhash_estimates_track_true_jaccard():
    rng = random.Random(3)
    words = [f"w{i}" for i in range(400)]
    index = NearDupIndex()
    errors = []
    for _ in range(60):
        base = [rng.choice(words) for _ in range(40)]
        edited = list(base)
        for _ in range(rng.randint(1, 8)):
            edited[rng.randrange(len(edited))] = rng.choice(words)
        a, b = " ".join(base), " ".join(edited)
        sig = index.signatures([a, b])
        errors.append((sig[0] == sig[1]).mean() - shingle_jaccard(a, b))
    assert abs(np.mean(errors)) < 0.02 and np.mean(np.abs(errors)) < 0.06


@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.9])
def test_lsh_parameters_match_datasketch(threshold):
    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    assert optimal_lsh_params(threshold, 128) == (lsh.b, lsh.r)


def test_screener_flags_near_duplicates_against_index_and_within_upload():
    index = NearDupIndex.build([(41, SENTENCE)])
    csv_text = f'text,label\n"{EDITED}",pos\n"{UNRELATED[0]}",neg\n"{UNRELATED[0]} Really.",neg\n'
    results = screened(csv_text, UploadScreener(SCHEMA, near_dup_index=index))
    assert [f.kind for f in results[0].flags] == ["near_duplicate"]
    assert results[0].flags[0].existing_row_id == 41 and results[0].flags[0].similarity >= 0.8
    assert results[1].flags == ()
    assert results[2].flags[0].upload_row_number == 2
    assert len(index) == 1  # the Datanet's index is not modified by screening
