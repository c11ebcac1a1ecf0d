"""ModelFactory REST API routes; the project includes them under `/api/v1/` (see `lineage/urls.py`).

Explicit paths, as the Datanets API: cancel, resume, deploy, undeploy and the adapter download are
actions, not CRUD."""

from django.urls import path

from . import api

J = "fine-tunes/<int:job_id>/"
M = "models/<slug:slug>/"

urlpatterns = [
    path("base-models/", api.BaseModelListView.as_view(), name="base-models-api-list"),
    path("fine-tunes/", api.FineTuneListView.as_view(), name="fine-tunes-api-list"),
    path(J, api.FineTuneDetailView.as_view(), name="fine-tunes-api-detail"),
    path(f"{J}cancel/", api.FineTuneCancelView.as_view(), name="fine-tunes-api-cancel"),
    path(f"{J}resume/", api.FineTuneResumeView.as_view(), name="fine-tunes-api-resume"),
    path("models/", api.ModelVersionListView.as_view(), name="models-api-list"),
    path(M, api.ModelVersionDetailView.as_view(), name="models-api-detail"),
    path(f"{M}adapter/", api.ModelVersionAdapterView.as_view(), name="models-api-adapter"),
    path(f"{M}deploy/", api.ModelVersionDeployView.as_view(), name="models-api-deploy"),
    path(f"{M}undeploy/", api.ModelVersionUndeployView.as_view(), name="models-api-undeploy"),
]
