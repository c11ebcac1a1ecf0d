from django.urls import path

from . import openai_views

app_name = "openai"
urlpatterns = [
    path("chat/completions", openai_views.ChatCompletionsView.as_view(), name="chat-completions"),
    path("completions", openai_views.CompletionsView.as_view(), name="completions"),
    path("models", openai_views.ModelsView.as_view(), name="models"),
    path("models/<str:model_id>", openai_views.ModelView.as_view(), name="model"),
]
