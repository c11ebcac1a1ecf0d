"""Where the server's URL and the API key come from, first found wins:

1. the arguments (`Lineage(base_url, api_key)`, `lineage --url … --api-key …`);
2. the environment: `LINEAGE_URL`, `LINEAGE_API_KEY`;
3. the config file `lineage login` writes: `$LINEAGE_CONFIG`, else `$XDG_CONFIG_HOME/lineage/config.toml`,
   else `~/.config/lineage/config.toml`.

The file's key is only used with the file's URL: a key is never sent to a server it was not saved for.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigurationError

DEFAULT_URL = "http://127.0.0.1:8000"  # `make run`


@dataclass(frozen=True)
class Settings:
    url: str
    api_key: str
    key_source: str  # "argument", "LINEAGE_API_KEY" or the config file's path: said in error messages


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("LINEAGE_CONFIG"):
        return Path(env["LINEAGE_CONFIG"]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]).expanduser() if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "lineage" / "config.toml"


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"“{url}” is not a server URL: give one starting with http:// or https:// "
                                 f"(for example {DEFAULT_URL}).")
    return url


def load_file(path: Path) -> dict:
    """The config file's table, or {} when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigurationError(f"Cannot read the config file {path}: {exc.strerror}.") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"The config file {path} is not valid TOML ({exc}): fix it, or delete it and run "
                                 "`lineage login` again.") from exc
    return data


def resolve(url: str | None = None, api_key: str | None = None, *, config_file: str | Path | None = None,
            env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    path = Path(config_file).expanduser() if config_file else config_path(env)
    saved = load_file(path)
    saved_url = normalise_url(str(saved["url"])) if saved.get("url") else None
    chosen_url = normalise_url(url or env.get("LINEAGE_URL") or saved_url or DEFAULT_URL)
    if api_key:
        return Settings(chosen_url, api_key.strip(), "argument")
    if env.get("LINEAGE_API_KEY"):
        return Settings(chosen_url, env["LINEAGE_API_KEY"].strip(), "LINEAGE_API_KEY")
    if saved.get("api_key") and chosen_url == (saved_url or DEFAULT_URL):
        return Settings(chosen_url, str(saved["api_key"]).strip(), str(path))
    if saved.get("api_key"):
        raise ConfigurationError(f"The key saved in {path} is for {saved_url}, not {chosen_url}: run `lineage login "
                                 f"--url {chosen_url}`, or set LINEAGE_API_KEY.")
    raise ConfigurationError(f"No API key for {chosen_url}: run `lineage login`, set LINEAGE_API_KEY, or pass "
                             f"the key (api_key=, --api-key). Create a key at {chosen_url}/account/keys/.")


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string (the same escapes, \uXXXX included).
    return json.dumps(value)


def save(*, url: str, api_key: str, path: str | Path | None = None) -> Path:
    """Write the config file, readable by its owner only; replaces it whole (never half-written)."""
    target = Path(path).expanduser() if path else config_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    text = ("# Written by `lineage login`. The API key is a secret: keep this file private.\n"
            f"url = {_toml_string(normalise_url(url))}\napi_key = {_toml_string(api_key)}\n")
    partial = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(partial, target)
    finally:
        if partial.exists():
            partial.unlink()
    return target
