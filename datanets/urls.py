from django.urls import path

from . import review_views, views

app_name = "datanets"
urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.create, name="create"),
    # Not a single path segment, so no Datanet's slug can hide it.
    path("contributions/mine/", views.my_contributions, name="my_contributions"),
    path("<slug:slug>/", views.detail, name="detail"),
    path("<slug:slug>/settings/", views.settings_view, name="settings"),
    path("<slug:slug>/members/", views.members, name="members"),
    path("<slug:slug>/contribute/", views.contribute, name="contribute"),
    path("<slug:slug>/contributions/<int:pk>/", views.contribution, name="contribution"),
    path("<slug:slug>/contributions/<int:pk>/errors.csv", views.contribution_errors_csv, name="contribution_errors_csv"),
    path("<slug:slug>/review/", views.review, name="review"),
    path("<slug:slug>/review/decide/", views.review_decide, name="review_decide"),
    path("<slug:slug>/review/rows/<int:pk>/decide/", review_views.review_row_decide, name="review_row_decide"),
    path("<slug:slug>/versions/", views.versions, name="versions"),
    path("<slug:slug>/versions/diff/", views.version_diff, name="version_diff"),
    path("<slug:slug>/versions/<int:number>/", views.version, name="version"),
    path("<slug:slug>/versions/<int:number>/verify/", views.version_verify, name="version_verify"),
    path("<slug:slug>/versions/<int:number>/download/<str:fmt>/", views.version_download, name="version_download"),
    path("<slug:slug>/rows/", views.rows, name="rows"),
    path("<slug:slug>/contributors/", views.contributors, name="contributors"),
    path("<slug:slug>/contributors/<str:username>/", views.contributor, name="contributor"),
    path("<slug:slug>/access/", views.access_request, name="access_request"),
    path("<slug:slug>/access/<int:pk>/decide/", views.access_decide, name="access_decide"),
]
