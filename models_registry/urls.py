from django.urls import path

from . import views

app_name = "models_registry"
urlpatterns = [path("", views.index, name="index")]
