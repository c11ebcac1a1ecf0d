from django import forms
from django.conf import settings

SCOPE_HELP = {
    "read": "Read Datanets, rows, models and receipts you can see.",
    "contribute": "Upload rows and, where you curate, review and publish.",
    "train": "Launch and cancel fine-tunes on your models.",
    "infer": "Call deployed models; fees are charged to your credit.",
}


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="A name you will recognise, e.g. 'laptop uploads'.")
    scopes = forms.MultipleChoiceField(
        choices=[(s, f"{s}: {SCOPE_HELP[s]}") for s in settings.API_KEY_SCOPES],
        widget=forms.CheckboxSelectMultiple,
        initial=["read"],
        help_text="Give each key only what the program using it needs.",
        error_messages={"required": "Choose at least one scope: a key without one can do nothing."},
    )
