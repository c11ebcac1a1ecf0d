"""The REST API (Django REST framework: API-key and session authentication, scopes, throttles, one error shape)
and its OpenAPI schema and documentation pages (drf-spectacular)."""

from .environment import env

# --- API
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttles.ApiKeyRateThrottle", "accounts.throttles.AnonBurstThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "api_key": env.str("API_KEY_RATE", default="600/min"),
        "anon": env.str("API_ANON_RATE", default="120/min"),
    },
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "lineage.api.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "lineage.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    # lineage.api.JSONParser bounds a JSON body's size and nesting before parsing it.
    "DEFAULT_PARSER_CLASSES": ["lineage.api.JSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Lineage API",
    "DESCRIPTION": "Datanets, fine-tunes, attribution, serving and rewards. Authenticate with "
    "`Authorization: Bearer <api key>`; each key carries scopes (read, contribute, train, infer).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No online validator badge: Swagger UI would load it from swagger.io (the docs work offline). The schemas
    # section starts closed: open by default, Swagger UI drew it closed and its first press did nothing.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None, "defaultModelsExpandDepth": 0},
    "COMPONENT_SPLIT_REQUEST": True,
    # Every operation documents the errors any request can meet (401, 403, 404, 429, ...) in its error shape.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "lineage.api.document_standard_errors"],
}
API_KEY_SCOPES = ("read", "contribute", "train", "infer")
