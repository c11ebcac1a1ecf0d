from django.shortcuts import render


def index(request):
    return render(request, "attribution/index.html")
