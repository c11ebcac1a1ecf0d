from django.urls import path

from . import views

app_name = "governance"
urlpatterns = [
    path("", views.proposal_list, name="proposals"),
    path("proposals/<int:pk>/", views.proposal_detail, name="proposal"),
    path("proposals/<int:pk>/vote/", views.vote, name="vote"),
    path("propose/", views.propose, name="propose"),
    path("delegate/", views.delegate, name="delegate"),
    path("queue/", views.queue, name="queue"),
    path("queue/<int:pk>/", views.advance, name="advance"),
    path("actions/<int:pk>/", views.action_detail, name="action"),
    path("stakes/", views.stakes, name="stakes"),
    path("datanets/<slug:slug>/stake/", views.datanet_stake, name="datanet_stake"),
]
