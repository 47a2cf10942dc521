import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # The copy-bandwidth cache lives under NORMBENCH_CACHE_DIR; tests never touch the user's.
    monkeypatch.setenv("NORMBENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
