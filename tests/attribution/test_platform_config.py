"""The benchmarks measure the index configuration the platform builds."""

from attribution import services


def test_quality_benchmarks_measure_the_platforms_index_configuration(settings):
    """bench/attribution_*.py report figures for PLATFORM_INDEX: it must be what index builds here use, or the
    published figures describe some other index."""
    from bench.platform_index import PLATFORM_INDEX, platform_config

    built = services.index_config(seed=5, k=settings.ATTRIBUTION_K)
    assert platform_config(seed=5, k=settings.ATTRIBUTION_K) == built
    assert PLATFORM_INDEX["damping_rule"] == settings.ATTRIBUTION_DAMPING_RULE == "weighted_mean_eigenvalue"
