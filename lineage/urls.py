from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from . import observability, views

# Staff sign in through allauth too, so its rate limits and verification apply to the admin.
admin.site.login = secure_admin_login(admin.site.login)
admin.site.site_header = "Lineage administration"

api_v1 = [
    path("", include("accounts.api_urls")),
    path("", include("datanets.api_urls")),
    path("", include("models_registry.api_urls")),
    path("", include("rewards.api_urls")),
    path("", include("inference.api_urls")),
    path("", include("attribution.api_urls")),
    path("", include("retrieval.api_urls")),
    path("", include("insights.api_urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("v1/", include("inference.openai_urls")),
    path("metrics", observability.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("account/", include("accounts.urls")),
    path("datanets/", include("datanets.urls")),
    path("datanets/", include("retrieval.urls")),  # a version's search page, beside its Datanet's pages
    path("retrieval-apps/", include("retrieval.app_urls")),
    path("models/", include("models_registry.urls")),
    path("attribution/", include("attribution.urls")),
    path("playground/", include("inference.urls")),
    path("rewards/", include("rewards.urls")),
    path("insights/", include("insights.urls")),
    path("governance/", include("governance.urls")),
    path("notifications/", include("notifications.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Served offline: Redoc and Swagger UI come from drf-spectacular-sidecar's static files. Both pages are the
    # project's own (templates/api/): Redoc's drops the library's Google Fonts links; both name their language,
    # and Swagger UI's adds a stylesheet and a plugin that make it pass axe-core.
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema", template_name="api/swagger_ui.html"),
         name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema", template_name="api/redoc.html"),
         name="api-redoc"),
]

handler400 = "lineage.views.bad_request"
handler404 = "lineage.views.api_not_found"
handler500 = "lineage.views.server_error"
