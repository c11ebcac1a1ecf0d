from django.urls import reverse

# The top navigation, in order: (label, url name, the first path segment that marks it active).
NAVIGATION = (
    ("Datanets", "datanets:index", "datanets"),
    ("Models", "models_registry:index", "models"),
    ("Playground", "inference:playground", "playground"),
    ("Rewards", "rewards:index", "rewards"),
    ("Dashboard", "insights:index", "insights"),
)


def navigation(request):
    first_segment = request.path.strip("/").split("/", 1)[0]
    return {
        "nav_items": [
            {"label": label, "url": reverse(name), "active": first_segment == segment}
            for label, name, segment in NAVIGATION
        ]
    }
