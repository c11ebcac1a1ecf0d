from django.urls import path

from . import views

app_name = "accounts"
urlpatterns = [
    path("keys/", views.api_keys, name="api_keys"),
    path("keys/<int:pk>/revoke/", views.api_key_revoke_view, name="api_key_revoke"),
]
