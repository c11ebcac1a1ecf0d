"""The form a model owner deploys a retrieval app with. It offers what the owner may see; whether each version
may be used (training access, a ready index, one per Datanet) the service decides, with its reasons."""

from django import forms
from django.conf import settings

from models_registry import selectors as model_selectors
from rewards.amounts import OpenAmountField

from . import selectors
from .services.apps import CAUSAL_TASKS


class AppVersionsField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, version):
        index = getattr(version, "retrieval_index", None)
        state = f"{index.passage_count} passages indexed" if index and index.searchable else (
            f"index {index.get_state_display().lower()}" if index else "no index")
        return f"{version.datanet.name} v{version.number} · {state}"


class CausalModelField(forms.ModelChoiceField):
    def label_from_instance(self, version):
        return f"{version.name} · {version.task}"


class RetrievalAppForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="Becomes the model name callers use, e.g. “coastal-answers”.")
    versions = AppVersionsField(
        label="Datanet versions", queryset=None, widget=forms.CheckboxSelectMultiple,
        help_text="Published versions of Documents Datanets to answer from, one per Datanet; each needs a ready "
                  "search index. An app over a private Datanet answers only those who may read it.",
        error_messages={"required": "Choose at least one published version of a Documents Datanet.",
                        "invalid_choice": "Version %(value)s is not one you can see; choose among the versions listed.",
                        "invalid_pk_value": "“%(pk)s” is not a Datanet version."})
    causal_model = CausalModelField(
        label="Answering model", queryset=None, required=False, to_field_name="slug",
        empty_label="None: quote the best passage's most relevant sentence",
        help_text="One of your deployed instruction or text models writes the answer from the passages found.",
        error_messages={"invalid_choice": "Choose one of your deployed instruction or text models, or none."})
    passages = forms.IntegerField(label="Passages per answer", min_value=1, max_value=settings.RETRIEVAL_MAX_K,
                                  initial=4, help_text="How many passages the answering model reads (and cites). An "
                                                       "extractive answer quotes the best one.")
    price_per_inference = OpenAmountField(label="Price per answer", initial=0,
                                          help_text="In OPEN per answer, up to 18 decimals (e.g. 0.05); 0 is free. "
                                                    "The contributors' part goes to the cited passages' contributors.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        # The choices depend on who asks: the fields declare no queryset, and each form gets its own here.
        self.fields["versions"].queryset = selectors.deployable_versions_for(user=user)
        self.fields["causal_model"].queryset = model_selectors.deployed_model_versions_of(owner=user,
                                                                                          tasks=CAUSAL_TASKS)
