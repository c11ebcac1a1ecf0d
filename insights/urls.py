from django.urls import path

from . import views

app_name = "insights"
urlpatterns = [
    path("", views.index, name="index"),
    path("datanets/<slug:slug>/", views.datanet, name="datanet"),
    path("models/<slug:slug>/", views.model, name="model"),
]
