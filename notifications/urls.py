from django.urls import path

from . import views

app_name = "notifications"
urlpatterns = [
    path("", views.settings_view, name="settings"),
    path("webhooks/", views.webhooks, name="webhooks"),
    path("webhooks/<int:webhook_id>/", views.webhook, name="webhook"),
    path("webhooks/<int:webhook_id>/test/", views.webhook_test, name="webhook_test"),
    path("webhooks/<int:webhook_id>/delete/", views.webhook_delete_view, name="webhook_delete"),
]
