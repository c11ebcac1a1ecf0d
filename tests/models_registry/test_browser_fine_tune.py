"""A model owner launches a fine-tune from the form in a real browser and watches it finish on a real
Celery worker (a worker thread consuming the configured broker), then reads the model card."""

import re
from contextlib import contextmanager

import pytest
from browser_support import assert_accessible
from cast_support import PASSWORD
from celery.contrib.testing.worker import start_worker
from playwright.sync_api import expect

from lineage.celery import app as celery_app
from models_registry import services

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@contextmanager
def celery_worker_thread():
    """From here on, tasks go through the broker to a worker thread instead of running eagerly."""
    celery_app.conf.task_always_eager = False
    try:
        with start_worker(celery_app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=30,
                          queues=["default", "gpu"]) as worker:
            yield worker
    finally:
        celery_app.conf.task_always_eager = True


def test_owner_launches_and_watches_a_fine_tune(live_server, page, alice, dora, intent_rows, publish, screenshot):
    version = publish(alice, intent_rows(), contributor=dora, name="Support intents")
    services.base_model_ensure_default()
    with celery_worker_thread():
        launch_and_watch(live_server, page, alice, version, screenshot)


def launch_and_watch(live_server, page, alice, version, screenshot):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(alice.email)
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()

    page.goto(f"{live_server.url}/models/jobs/new/")
    assert_accessible(page)
    page.get_by_label("Name").fill("support-intents")
    page.get_by_label(re.compile(f"Support intents v{version.number}")).check()
    page.locator("summary", has_text="LoRA and training settings").click()
    page.get_by_label("Epochs").fill("4")
    page.get_by_label("Batch size").fill("8")
    page.get_by_label("Max sequence length").fill("32")
    page.get_by_label("Evaluation split").fill("0.25")
    page.get_by_label("Learning rate").fill("0.002")
    page.get_by_role("button", name="Launch fine-tune").click()

    state = page.get_by_test_id("job-state")
    expect(state).to_have_text(re.compile("Queued|Running|Succeeded"))
    expect(state).to_have_text("Succeeded", timeout=240_000)  # the page polls with htmx
    assert_accessible(page)
    screenshot("fine-tune-job")
    page.get_by_test_id("model-link").click()
    fine_tuned = float(page.locator("td[data-metric='accuracy']").get_attribute("data-value"))
    expect(page.locator("td[data-metric='accuracy']")).to_have_text(re.compile(r"^\d+\.\d%$"))
    expect(page.locator("td[data-base-metric='accuracy']")).to_have_text("not measured")
    majority = float(page.get_by_test_id("majority-rate").inner_text().rstrip("%")) / 100
    assert fine_tuned > majority
    expect(page.get_by_text("Trained on 36 rows from 1 contributor, 12 held out for evaluation")).to_be_visible()
    assert_accessible(page)
    screenshot("model-card")


def test_form_explains_refusals(live_server, page, alice, charlie, intent_rows, publish):
    publish(alice, intent_rows(1), visibility="private", name="Secret intents")
    services.base_model_ensure_default()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(charlie.email)
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    page.goto(f"{live_server.url}/models/jobs/new/")
    expect(page.get_by_text("You have no Datanet version you may train on yet")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("Name").fill("nothing")
    page.get_by_role("button", name="Launch fine-tune").click()
    expect(page.locator(".errorlist")).to_contain_text("required")
    assert_accessible(page)
