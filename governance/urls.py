from django.urls import path

from . import views

app_name = "governance"
urlpatterns = [
    path("", views.proposal_list, name="proposals"),
    path("proposals/<int:pk>/", views.proposal_detail, name="proposal"),
]
