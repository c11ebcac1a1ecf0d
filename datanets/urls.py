from django.urls import path

from . import views

app_name = "datanets"
urlpatterns = [path("", views.index, name="index")]
