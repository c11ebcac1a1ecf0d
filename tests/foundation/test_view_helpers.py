"""The two helpers every page shares (#21): a service's ValidationError shown on the form that asked
(`lineage.forms.form_errors_from`), and the page-or-partial switch for htmx requests (`lineage.htmx`). The last
test reads every view module of every app, so a hand-rolled copy of either cannot come back unnoticed."""

import ast
from pathlib import Path

import pytest
from django import forms
from django.core.exceptions import ValidationError
from django.test import RequestFactory
from django_htmx.middleware import HtmxMiddleware

from lineage.forms import form_errors_from
from lineage.htmx import page_or_partial

ROOT = Path(__file__).resolve().parents[2]
APPS = ("accounts", "attribution", "datanets", "governance", "inference", "insights", "lineage", "models_registry",
        "notifications", "retrieval", "rewards")


class NameForm(forms.Form):
    name = forms.CharField()
    summary = forms.CharField(required=False)


def bound_form():
    form = NameForm({"name": "Intents"})
    assert form.is_valid()
    return form


def test_a_dict_of_errors_lands_on_the_fields_the_form_has_and_the_rest_above_it():
    form = bound_form()
    form_errors_from(form, ValidationError({"name": ["That name is taken.", "Too plain."],
                                            "label_set": "Two labels at least.", "__all__": "Not now."}))
    assert form.errors["name"] == ["That name is taken.", "Too plain."]
    assert form.non_field_errors() == ["Two labels at least.", "Not now."]
    assert "name" not in form.cleaned_data and "label_set" not in form.errors


@pytest.mark.parametrize("error", [ValidationError("Link a wallet first."),
                                   ValidationError(["Link a wallet first.", "Then stake."])])
def test_a_plain_error_goes_above_the_form_message_by_message(error):
    form = bound_form()
    form_errors_from(form, error)
    assert form.non_field_errors() == error.messages
    assert set(form.errors) == {"__all__"}


def _request(*, htmx: bool):
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    request = RequestFactory().get("/datanets/", **headers)
    HtmxMiddleware(lambda r: None)(request)  # sets request.htmx, as on every served request
    return request


def test_a_plain_request_gets_the_page_and_an_htmx_one_the_fragment_it_swaps():
    plain, htmx = _request(htmx=False), _request(htmx=True)
    assert page_or_partial(plain, "datanets/rows.html", partial="table") == "datanets/rows.html"
    assert page_or_partial(htmx, "datanets/rows.html", partial="table") == "datanets/rows.html#table"
    assert page_or_partial(plain, "retrieval/search.html", partial_template="retrieval/_results.html") == (
        "retrieval/search.html")
    assert page_or_partial(htmx, "retrieval/search.html", partial_template="retrieval/_results.html") == (
        "retrieval/_results.html")
    assert page_or_partial(htmx, "insights/index.html") == "insights/index.html"  # no fragment named: the page
    with pytest.raises(ValueError, match="not both"):
        page_or_partial(htmx, "retrieval/search.html", partial="results", partial_template="retrieval/_results.html")


@pytest.mark.django_db
def test_a_served_page_answers_htmx_with_its_partial_alone(client):
    page = client.get("/datanets/").content.decode()
    fragment = client.get("/datanets/", headers={"HX-Request": "true"}).content.decode()
    assert "<html" in page and "<html" not in fragment and fragment.strip()
    assert fragment.strip() in page


def view_modules():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "views" in path.stem and "migrations" not in path.parts:
                yield path


def hand_rolled(source: str, name: str) -> list[str]:
    """What in a view module copies a shared helper: a ValidationError's `message_dict` or `error_dict` read
    (form_errors_from maps it), or an `x if request.htmx else y` (page_or_partial picks the template)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("message_dict", "error_dict"):
            found.append(f"{name}:{node.lineno}: reads .{node.attr}; use lineage.forms.form_errors_from")
        elif isinstance(node, ast.Constant) and node.value == "error_dict":  # hasattr(exc, "error_dict")
            found.append(f"{name}:{node.lineno}: tests for error_dict; use lineage.forms.form_errors_from")
        elif isinstance(node, ast.IfExp) and isinstance(node.test, ast.Attribute) and node.test.attr == "htmx":
            found.append(f"{name}:{node.lineno}: picks a template on request.htmx; use lineage.htmx")
    return found


COPIES = [
    "for field, errors in exc.message_dict.items():\n    form.add_error(field, errors)",
    "if hasattr(exc, 'error_dict'):\n    pass",
    "template = 'a.html#part' if request.htmx else 'a.html'",
]


def test_no_view_hand_rolls_form_errors_or_the_htmx_switch():
    for copy in COPIES:  # the scanner sees each kind of copy
        assert len(hand_rolled(copy, "copy.py")) == 1, copy
    modules = list(view_modules())
    assert len(modules) >= 10  # every app's pages are read (a moved file would make this pass vacuously)
    found = [problem for path in modules
             for problem in hand_rolled(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]
    assert not found, "\n".join(found)
