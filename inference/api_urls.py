from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter()
router.register("inferences", api.InferenceViewSet, basename="inference")
urlpatterns = router.urls
