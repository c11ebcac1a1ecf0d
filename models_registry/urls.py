from django.urls import path

from . import views

app_name = "models_registry"
urlpatterns = [
    path("", views.index, name="index"),
    path("jobs/new/", views.job_create, name="job_create"),
    path("jobs/<int:pk>/", views.job, name="job"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="job_cancel"),
    path("<slug:slug>/", views.version, name="version"),
    path("<slug:slug>/deploy/", views.version_deploy, name="version_deploy"),
    path("<slug:slug>/adapter.zip", views.version_download, name="version_download"),
]
