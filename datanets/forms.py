from django import forms

from .models import ContributionPolicy, Datanet, Licence, TaskType, TrainingAccess, Visibility


class CommaListField(forms.CharField):
    """A comma-separated list in one text box (labels, tags, metadata columns)."""

    def to_python(self, value):
        value = super().to_python(value)
        return [item.strip() for item in (value or "").split(",") if item.strip()]

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list | tuple) else value


class DatanetForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="Shown everywhere; the web address is made from it.")
    summary = forms.CharField(max_length=280, required=False, help_text="One sentence: what rows belong here.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), required=False,
                                  help_text="Markdown: what to contribute, what not to, and how rows are judged.")
    task_type = forms.ChoiceField(choices=TaskType.choices, help_text="Fixes the columns every row must have. Documents: "
                                  "contributors upload .txt, .md, .html, .pdf or .docx files, split into passages "
                                  "that each published version can be searched by.")
    label_set = CommaListField(required=False, label="Labels",
                               help_text="Text classification only: the allowed labels, separated by commas.")
    metadata_columns = CommaListField(required=False, help_text="Optional extra columns kept with each row, e.g. source, language.")
    tags = CommaListField(required=False, help_text="Separated by commas; help people find the Datanet.")
    licence = forms.ChoiceField(choices=Licence.choices)
    visibility = forms.ChoiceField(choices=Visibility.choices)
    contribution_policy = forms.ChoiceField(choices=ContributionPolicy.choices)
    training_access = forms.ChoiceField(choices=TrainingAccess.choices)
    max_field_length = forms.IntegerField(min_value=1, max_value=100_000, initial=10_000,
                                          help_text="Longest text allowed in one field, in characters.")
    max_rows_per_contribution = forms.IntegerField(min_value=1, max_value=1_000_000, initial=100_000)

    def clean(self):
        data = super().clean()
        if data.get("task_type") == TaskType.TEXT_CLASSIFICATION and len(data.get("label_set") or []) < 2:
            self.add_error("label_set", "A text-classification Datanet needs at least two labels.")
        if data.get("task_type") and data.get("task_type") != TaskType.TEXT_CLASSIFICATION and data.get("label_set"):
            self.add_error("label_set", "Only text-classification Datanets have labels; leave this empty.")
        return data


class DatanetSettingsForm(DatanetForm):
    """Editing: the task type is fixed once the Datanet exists (rows depend on it)."""

    task_type = None

    def __init__(self, *args, datanet: Datanet, **kwargs):
        self.datanet = datanet
        super().__init__(*args, **kwargs)

    def clean(self):
        self.cleaned_data["task_type"] = self.datanet.task_type
        return super().clean()


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """One or several files from one file input; cleans to a list."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        clean_one = super().clean
        if isinstance(data, list | tuple) and data:
            return [clean_one(item, initial) for item in data]
        return [clean_one(None if isinstance(data, list | tuple) else data, initial)]  # none chosen: "required"


class DocumentUploadForm(forms.Form):
    """A Documents Datanet's upload: one or several documents, each split into passages."""

    documents = MultipleFileField(help_text="Text (.txt), Markdown (.md), web pages (.html), PDF files with a text layer "
                                            "(.pdf) or Word documents (.docx), each optionally gzip-compressed, or a .zip "
                                            "of them. Choose several at once: a document that cannot be read is reported "
                                            "and the others are kept.")


class UploadForm(forms.Form):
    file = forms.FileField(help_text="CSV, TSV, JSON Lines or Parquet, optionally gzip-compressed. "
                                     "The first row of a CSV/TSV names the columns.")


class ReviewForm(forms.Form):
    decision = forms.ChoiceField(choices=[("accept", "Accept"), ("reject", "Reject")])
    reason = forms.CharField(max_length=500, required=False)
    record_ids = forms.CharField(required=False)
    select_all_filtered = forms.BooleanField(required=False)


class PublishForm(forms.Form):
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False,
                            help_text="What changed since the last version (shown on the card).")


class AccessRequestForm(forms.Form):
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False,
                              help_text="Tell the owner what you will train and why.")
