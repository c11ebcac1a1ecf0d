"""What the `lineage` command prints for counts: "1 contributor", "2 contributors", never "1 contributors"
(`lineage_client._cli_output`, plain functions over the SDK's typed results; no server needed)."""

from lineage_client._cli_output import contribution_line, counted, model_lines, version_line
from lineage_client.types import Contribution, DatanetVersion, ModelVersion


def test_counts_take_the_singular_for_one_only():
    assert [counted(n, "contributor") for n in (0, 1, 2)] == ["0 contributors", "1 contributor", "2 contributors"]


def test_a_published_version_counts_its_rows_and_contributors():
    def line(rows, contributors):
        return version_line(DatanetVersion.from_api({"datanet": "intents", "number": 3, "manifest_hash": "ab" * 32,
                                                     "row_count": rows, "contributor_count": contributors}))

    assert line(1, 1).startswith("Published intents v3: 1 row from 1 contributor, hash abab")
    assert line(24, 2).startswith("Published intents v3: 24 rows from 2 contributors, hash ")
    assert line(24, 2).endswith("Train on it with `lineage fine-tunes launch --datanet intents:3`.")


def test_a_models_lineage_counts_each_datanets_rows_and_contributors():
    datanet = {"visible": True, "datanet": "intents", "version": 1, "licence": "CC-BY-4.0", "version_hash": "cd" * 32}
    model = ModelVersion.from_api({"slug": "intents-model", "lineage": {"datanets": [
        {**datanet, "rows": 1, "contributors": 1}, {**datanet, "version": 2, "rows": 30, "contributors": 3}]}})
    assert model_lines(model)[1:] == [
        "  trained on intents v1: 1 row from 1 contributor, CC-BY-4.0, hash cdcdcdcdcdcdcdcd…",
        "  trained on intents v2: 30 rows from 3 contributors, CC-BY-4.0, hash cdcdcdcdcdcdcdcd…",
    ]


def test_a_contribution_counts_its_duplicates():
    def line(duplicates):
        return contribution_line(Contribution.from_api({
            "id": 7, "datanet": "intents", "state": "in_review", "progress_percent": 100,
            "counts": {"total": 3, "accepted": 3 - duplicates, "rejected": 0, "duplicate": duplicates}}))

    assert line(1).endswith("0 refused, 1 duplicate.") and line(2).endswith("0 refused, 2 duplicates.")
