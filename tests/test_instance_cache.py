"""The prebuilt instance tables (``catalog/data/instances.cache``): equal to the CSV-parsed
catalog, and never served once a CSV or schema differs from what they were built from."""

from __future__ import annotations

from pathlib import Path

import pytest

from infersave.catalog import load

PRICE_SETS = [p for p in load._PRICE_SET_FILES if p != load.CLOUD]


@pytest.mark.parametrize("price_set", PRICE_SETS)
def test_shipped_cache_equals_the_parsed_csv(price_set: str) -> None:
    """Fails when a CSV (or the Instance/GPU schema) changed without rebuilding the cache: run
    ``python -c "from infersave.catalog.load import build_instance_cache as b; b()"``."""
    cached = load._cached_instances(price_set)
    assert cached is not None, "instances.cache is stale; rebuild it (see the docstring)"
    parsed = load._parse_instances(price_set)
    assert cached == parsed
    assert [i.model_dump() for i in cached] == [i.model_dump() for i in parsed]
    entry = load._fresh_entry(price_set)
    assert entry is not None and set(entry[1]) == {i.region for i in parsed}


def test_changed_csv_is_parsed_not_served_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "_digest", lambda price_set: "another file")
    assert load._cached_instances("aws") is None and load._fresh_entry("lambda") is None
    load._instances.cache_clear()
    load.provider_regions.cache_clear()
    try:
        table = load.instances_for(["aws"], ["us-east-1"])  # the CSV path still works
        assert table and {i.region for i in table} == {"us-east-1"}
        assert "us-east-1" in load.provider_regions("aws")
    finally:
        load._instances.cache_clear()
        load.provider_regions.cache_clear()


def test_changed_schema_drops_the_whole_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    load._instance_cache.cache_clear()
    monkeypatch.setattr(load, "_schema_signature", lambda: "a new field")
    try:
        assert load._instance_cache() == {} and load._cached_instances("aws") is None
    finally:
        load._instance_cache.cache_clear()


def test_build_writes_a_cache_that_reads_back(tmp_path: Path) -> None:
    import pickle
    import zlib

    path = load.build_instance_cache(tmp_path)
    data = pickle.loads(path.read_bytes())
    assert set(data["tables"]) == set(PRICE_SETS)
    digest, regions, blob = data["tables"]["paper-2025"]
    assert digest == load._digest("paper-2025")
    assert pickle.loads(zlib.decompress(blob)) == load._parse_instances("paper-2025")
    assert regions == load.regions("paper-2025")
