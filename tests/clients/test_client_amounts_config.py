"""The SDK's plain parts, no server: OPEN amounts converted exactly, where the URL and key come from (and that a
saved key never goes to another server), and both of the server's error shapes read into one hierarchy."""

import stat
from decimal import Decimal

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lineage_client import config
from lineage_client.amounts import UINT256_MAX, base_units_to_open, open_to_base_units
from lineage_client.errors import (
    BadRequestError,
    ConfigurationError,
    InvalidAmountError,
    NotFoundError,
    RateLimitError,
    ServerError,
    error_from_response,
)

# --- Amounts --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "units"), [
    ("0.05", 5 * 10**16), ("1", 10**18), ("0", 0), ("0.000000000000000001", 1), (" 2.5 ", 25 * 10**17),
    ("1_000", 10**21), ("1e-18", 1), (Decimal("0.1"), 10**17), (3, 3 * 10**18),
    ("123456789.123456789123456789", 123456789123456789123456789),
])
def test_open_decimals_become_exact_base_units(amount, units):
    assert open_to_base_units(amount) == units


@pytest.mark.parametrize(("amount", "why"), [
    ("abc", "is not an amount of OPEN"), ("", "is not an amount of OPEN"), ("NaN", "is not an amount of OPEN"),
    ("Infinity", "is not an amount of OPEN"), ("-1", "is negative"), ("0.0000000000000000001", "18 decimal places"),
    (0.1, "a float is not exact"), (True, "a float is not exact"), ("1e60", "larger than any amount"),
    ([1], "not list"),
])
def test_amounts_that_are_not_exact_are_refused_with_the_reason(amount, why):
    with pytest.raises(InvalidAmountError) as refused:
        open_to_base_units(amount)
    assert why in str(refused.value) and isinstance(refused.value, ValueError)


@given(st.integers(min_value=0, max_value=UINT256_MAX))
def test_base_units_round_trip_through_their_open_text(units):
    assert open_to_base_units(base_units_to_open(units)) == units


def test_open_text_has_no_trailing_zeros():
    assert [base_units_to_open(u) for u in (0, 10**18, 5 * 10**16, 1, 15 * 10**17)] == [
        "0", "1", "0.05", "0.000000000000000001", "1.5"]


# --- Configuration --------------------------------------------------------------------------------------------


def test_arguments_then_environment_then_the_saved_login(tmp_path):
    path = config.save(url="https://saved.example/", api_key="lin_saved_key", path=tmp_path / "c.toml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and not list(tmp_path.glob(".*"))
    saved = config.resolve(config_file=path, env={})
    assert (saved.url, saved.api_key, saved.key_source) == ("https://saved.example", "lin_saved_key", str(path))
    env = {"LINEAGE_URL": "https://saved.example", "LINEAGE_API_KEY": "lin_env_key"}
    assert config.resolve(config_file=path, env=env).api_key == "lin_env_key"
    assert config.resolve("https://saved.example", "lin_arg_key", config_file=path, env=env).key_source == "argument"
    assert config.resolve(config_file=tmp_path / "none.toml", env=env).url == "https://saved.example"


def test_a_saved_key_is_never_sent_to_another_server(tmp_path):
    path = config.save(url="https://saved.example", api_key="lin_saved_key", path=tmp_path / "c.toml")
    with pytest.raises(ConfigurationError) as other:
        config.resolve("https://elsewhere.example", config_file=path, env={})
    assert "is for https://saved.example, not https://elsewhere.example" in str(other.value)
    with pytest.raises(ConfigurationError) as via_env:
        config.resolve(config_file=path, env={"LINEAGE_URL": "https://elsewhere.example"})
    assert "lineage login --url https://elsewhere.example" in str(via_env.value)


def test_missing_or_broken_configuration_says_what_to_do(tmp_path):
    with pytest.raises(ConfigurationError) as none:
        config.resolve(config_file=tmp_path / "absent.toml", env={})
    assert "No API key for http://127.0.0.1:8000: run `lineage login`" in str(none.value)
    broken = tmp_path / "broken.toml"
    broken.write_text('url = "http://x\n', encoding="utf-8")
    with pytest.raises(ConfigurationError) as bad:
        config.resolve(config_file=broken, env={})
    assert "is not valid TOML" in str(bad.value) and "run `lineage login` again" in str(bad.value)
    with pytest.raises(ConfigurationError) as url:
        config.resolve("ftp://x", "lin_a_b", config_file=broken.with_name("none"), env={})
    assert "start" in str(url.value) and "http://" in str(url.value)
    assert config.config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "lineage" / "config.toml"


def test_a_key_with_quotes_survives_the_file(tmp_path):
    path = config.save(url="http://127.0.0.1:8000", api_key='lin_"odd"\\key', path=tmp_path / "c.toml")
    assert config.resolve(config_file=path, env={}).api_key == 'lin_"odd"\\key'


# --- Both error shapes, one hierarchy ---------------------------------------------------------------------------


def _response(status, **kwargs):
    return httpx.Response(status, request=httpx.Request("GET", "http://server/x"), **kwargs)


def test_the_lineage_and_the_openai_error_shapes_read_alike():
    lineage = error_from_response(_response(400, json={
        "code": "invalid", "detail": "Some fields are not valid: see `fields`.", "fields": {"name": ["Required."]}}))
    assert isinstance(lineage, BadRequestError) and lineage.fields == {"name": ["Required."]}
    assert str(lineage) == "Some fields are not valid: see `fields`. name: Required."
    openai = error_from_response(_response(429, headers={"retry-after": "7"}, json={"error": {
        "message": "Not enough credit.", "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}))
    assert isinstance(openai, RateLimitError) and (openai.code, openai.retry_after) == ("insufficient_quota", 7.0)
    assert str(openai) == "Not enough credit." and openai.fields == {}
    gone = error_from_response(_response(404, json={"code": "not_found", "detail": "Not found.", "fields": {}}),
                               what="Datanet “x”")
    assert isinstance(gone, NotFoundError) and str(gone) == "No Datanet “x” that this API key can see."
    proxy = error_from_response(_response(502, text="<html>Bad gateway</html>", headers={"content-type": "text/html"}))
    assert isinstance(proxy, ServerError) and proxy.status == 502 and str(proxy) == "502 Bad Gateway."
