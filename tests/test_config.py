"""config: defaults, the shipped TOML files, and one-line rejections."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from xray_scale.config import Config, load_config
from xray_scale.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_tutorial_toml_is_exactly_the_default():
    assert load_config(CONFIGS / "tutorial.toml") == Config() == load_config()


def dotted_keys(table: dict, prefix: str = "") -> set[str]:
    """Every table and key of ``table``, nested ones included, as ``"store.compressor"``."""
    keys = set()
    for key, value in table.items():
        keys.add(prefix + key)
        if isinstance(value, dict):
            keys |= dotted_keys(value, f"{prefix}{key}.")
    return keys


def test_tutorial_toml_names_every_key_of_the_defaults():
    written = tomllib.loads((CONFIGS / "tutorial.toml").read_text(encoding="utf-8"))
    assert dotted_keys(written) == dotted_keys(Config().to_dict())


def test_dict_round_trip_and_partial_override():
    config = load_config(
        {"filters": {"laplace_gaussian": {"sigma": 2}}, "masks": {"threshold": 90}}
    )
    assert config.params("laplace_gaussian") == {"sigma": 2.0}
    assert config.params("gaussian_gradient_magnitude") == {"sigma": 2.0}
    assert config.threshold == 90.0
    assert load_config(config.to_dict()) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"filter": {}}, "unknown key config.filter; allowed keys in [config]: filters, input"),
        ({"filters": {"enabled": ["sobel", "blur"]}}, "filters.enabled entry must be one of"),
        ({"filters": {"blur": {}}}, "unknown key filters.blur"),
        ({"filters": {"sobel": {"sigma": 1}}}, "filters.sobel.sigma; allowed: none"),
        (
            {"filters": {"laplace_gaussian": {"sigma": -1}}},
            "filters.laplace_gaussian.sigma must be > 0",
        ),
        ({"filters": {"laplace_gaussian": {"sigma": "x"}}}, "must be a number, got 'x'"),
        ({"filters": {"laplace_gaussian": {"sigmas": 1}}}, "allowed: sigma"),
        ({"run": {"batch_size": 0}}, "run.batch_size must be an integer >= 1"),
        ({"input": {"size_policy": "stretch"}}, "input.size_policy must be one of 'fail', 'pad'"),
        ({"input": {"size": [10]}}, "input.size must be 'auto' or [height, width]"),
        ({"input": {"bit_depth": 12}}, "input.bit_depth must be one of 8, 16"),
        ({"store": {"filter_dtype": "int8"}}, "store.filter_dtype must be one of 'float32'"),
        ({"store": {"compressor": "gzip"}}, "store.compressor must be one of 'none'"),
        ({"store": {"compression_level": 0}}, "store.compression_level must be an integer >= 1"),
        (
            {"store": {"compressor": "blosc-lz4", "compression_level": 12}},
            "store.compression_level must be <= 9 for compressor 'blosc-lz4', got 12",
        ),
        ({"masks": {"enabled": ["mask_values", "mask_values"]}}, "lists a name twice"),
        ({"masks": {"threshold": float("nan")}}, "masks.threshold must be a finite number"),
        (
            {"filters": {"canny": {"low_threshold": 0.5, "high_threshold": 0.2}}},
            "low_threshold must be <= filters.canny.high_threshold",
        ),
    ],
)
def test_bad_configs_name_the_key_and_the_allowed_values(data, message):
    with pytest.raises(ConfigError) as caught:
        load_config(data)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[run\nbatch_size = 2")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_a_directory_or_a_non_utf8_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot be read \(.+\); give a readable TOML file"):
        load_config(tmp_path)
    (tmp_path / "latin1.toml").write_bytes("# caf\xe9\n[run]\nbatch_size = 2\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.toml' is not UTF-8 text .*; give a TOML file"):
        load_config(tmp_path / "latin1.toml")


def test_full_dump_config_keeps_previews_and_no_full_resolution_maps():
    config = load_config(CONFIGS / "full-dump.toml")
    assert (config.full_resolution, config.preview_size, config.batch_size) == (False, 256, 16)
    assert config.filters == Config().filters and config.masks == Config().masks


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ({"full_resolution": "no"}, "store.full_resolution must be true or false"),
        ({"preview_size": 8}, "store.preview_size must be 0 (none) or >= 16"),
        ({"preview_size": -1}, "store.preview_size must be an integer >= 0"),
    ],
)
def test_bad_storage_policy(store, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config({"store": store})
