from django.urls import path

from . import views

app_name = "inference"
urlpatterns = [
    path("", views.playground, name="playground"),
    path("operator/", views.operator, name="operator"),
]
