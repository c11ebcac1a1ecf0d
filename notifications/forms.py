from django import forms

from .catalogue import EMAIL_KINDS, EVENT_TYPES


class NotificationSettingsForm(forms.Form):
    """One checkbox per e-mail kind (unchecked: that kind is not sent)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, kind in EMAIL_KINDS.items():
            self.fields[name] = forms.BooleanField(label=kind.label, help_text=kind.help, required=False)


class WebhookForm(forms.Form):
    url = forms.CharField(label="URL", max_length=2000, widget=forms.URLInput(attrs={"placeholder": "https://example.org/lineage-events"}),
                          help_text="Where to POST events. Outside development it must be https and reachable on the "
                                    "public internet.")
    description = forms.CharField(max_length=120, required=False, help_text="Optional: what receives these events.")
    datanet = forms.ChoiceField(label="Events of", required=False,
                                help_text="Your own events, or those of a Datanet you own (its uploads and versions).")
    events = forms.MultipleChoiceField(choices=[(name, f"{name}: {kind.label}") for name, kind in EVENT_TYPES.items()],
                                       widget=forms.CheckboxSelectMultiple,
                                       help_text="A Datanet's webhook receives only contribution.validated and "
                                                 "version.published.")

    def __init__(self, *args, datanets=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["datanet"].choices = [("", "My account")] + [(d.slug, f"Datanet: {d.name}") for d in datanets]
