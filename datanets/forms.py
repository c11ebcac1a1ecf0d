import re
from dataclasses import dataclass, field

from django import forms
from django.core.exceptions import ValidationError

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


TYPED_ROWS_SHOWN = 3  # lines of an empty grid; "Add a row" adds more
TYPED_ROWS_MAX = 20
_TYPED_FIELD = re.compile(r"row-(\d+)-")


@dataclass
class TypedCell:
    column: str
    name: str
    value: str = ""
    error: str = ""
    is_label: bool = False


@dataclass
class TypedLine:
    number: int  # 1-based, as the grid and its messages say "Row N"
    cells: list[TypedCell] = field(default_factory=list)


class TypedRowsGrid:
    """The contribute page's "type rows" grid: inputs named `row-<i>-<column>`, lines added and removed in
    the browser (static/js/typed_rows.js). Read back in order; a refused grid is drawn again as typed, each
    problem next to its field."""

    max_lines = TYPED_ROWS_MAX

    def __init__(self, schema, data=None):
        self.columns = schema.columns
        self.required = schema.required_columns
        self.labels = list(schema.label_set)
        if data is None:
            values = [{} for _ in range(TYPED_ROWS_SHOWN)]
        else:
            indexes = sorted({int(m.group(1)) for key in data if (m := _TYPED_FIELD.match(key))})
            values = [{c: str(data.get(f"row-{i}-{c}", "")).strip() for c in self.columns} for i in indexes] or [{}]
        self.lines = [self._line(n, row) for n, row in enumerate(values, start=1)]
        self.blank = self._line(1, {})  # the browser's template for "Add a row"

    def _line(self, number: int, row: dict) -> TypedLine:
        return TypedLine(number, [TypedCell(column=c, name=f"row-{number - 1}-{c}", value=row.get(c, ""),
                                            is_label=c == "label" and bool(self.labels)) for c in self.columns])

    def rows(self) -> list[dict]:
        """The typed lines that are not empty, as rows; ValidationError (and each problem marked on its
        field) when a line lacks a required column or a label, or when nothing was typed."""
        rows, problems = [], []
        for line in self.lines:
            if not any(cell.value for cell in line.cells):
                continue
            for cell in line.cells:
                if cell.is_label and cell.value not in self.labels:
                    cell.error = f"Choose a label (one of {', '.join(self.labels)})."
                elif cell.column in self.required and not cell.value:
                    cell.error = f"Fill in the {cell.column}."
                if cell.error:
                    problems.append(f"Row {line.number}: {cell.error[0].lower()}{cell.error[1:]}")
            rows.append({cell.column: cell.value for cell in line.cells if cell.value})
        if len(self.lines) > TYPED_ROWS_MAX:
            problems.append(f"Type at most {TYPED_ROWS_MAX} rows at a time; upload a file for more.")
        if problems:
            raise ValidationError(problems)
        if not rows:
            raise ValidationError("Type at least one row, or choose a file to upload.")
        return rows


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
