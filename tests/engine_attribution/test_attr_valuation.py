"""Data valuation: rows that contradict the evaluation set come out harmful, helpful rows valuable."""

import torch
from attr_tiny_models import tiny_classifier, topical_classification_inputs, train, training_batches
from sklearn.metrics import roc_auc_score

from attribution.engine.build import IndexConfig
from attribution.engine.build_pass import build_index
from attribution.engine.projection import ProjectionSpec
from attribution.engine.query import Attributor
from attribution.engine.valuation import value_training_data


def test_validation_harm_finds_planted_mislabeled_rows(tmp_path):
    data = topical_classification_inputs(96, 8, seed=40, topic_fraction=0.8)
    evaluation = topical_classification_inputs(48, 8, seed=41, topic_fraction=0.8)
    # "mallory" uploads copies of evaluation texts with wrong labels.
    planted = torch.arange(5, 96, 9)
    for j, i in enumerate(planted.tolist()):
        data["input_ids"][i] = evaluation["input_ids"][j]
        data["attention_mask"][i] = evaluation["attention_mask"][j]
        data["labels"][i] = (evaluation["labels"][j] + 1) % 3
    is_planted = torch.zeros(96, dtype=torch.bool)
    is_planted[planted] = True
    model = train(tiny_classifier(seed=2), data, epochs=6)
    index = build_index(
        model, training_batches(data, lambda i: "mallory" if is_planted[i] else f"c{i % 8}"), tmp_path / "idx",
        IndexConfig(ProjectionSpec(seed=5, k=512)), model_hash="m",
    )
    valuation = value_training_data(Attributor(model, index), [evaluation], outlier_z=2.0)

    harm = -valuation.row_values
    assert roc_auc_score(is_planted.numpy(), harm.numpy()) > 0.7
    assert min(valuation.contributor_values, key=valuation.contributor_values.get) == "mallory"
    assert valuation.most_harmful[0].contributor_id == "mallory"
    assert valuation.most_helpful[0].score > 0 > valuation.row_values.min()
    assert all(r.score > valuation.harm_threshold >= 0 for r in valuation.likely_mislabeled)
    assert [r.score for r in valuation.likely_mislabeled] == sorted((r.score for r in valuation.likely_mislabeled),
                                                                  reverse=True)
