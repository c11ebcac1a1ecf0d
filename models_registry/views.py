from django.shortcuts import render


def index(request):
    return render(request, "models_registry/index.html")
