"""Search pages; the project includes them under `/datanets/`, beside the Datanet pages they belong to."""

from django.urls import path

from . import views

app_name = "retrieval"
urlpatterns = [
    path("<slug:slug>/versions/<int:number>/search/", views.version_search, name="version_search"),
]
