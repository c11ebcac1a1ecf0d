"""Form helpers shared by every app's pages."""

from django import forms
from django.core.exceptions import ValidationError


def form_errors_from(form: forms.BaseForm, exc: ValidationError) -> None:
    """Show a service's `ValidationError` on the form that asked for the change. A dict of errors (a service
    names the field it refused, `ValidationError({"name": ...})`) puts each field's messages on that field when
    the form has it and above the form when it has not; a plain error's messages go above the form."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)
