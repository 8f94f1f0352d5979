"""Redaction masks secrets, not locations: PWD once turned every manifest path into '***'."""

from __future__ import annotations

from prefmix.lineage.redact import redact, secret_values


def test_working_directory_is_not_a_secret(monkeypatch):
    monkeypatch.setenv("PWD", "/work/main/somewhere")
    monkeypatch.setenv("MY_API_TOKEN", "tok-1234567890")
    values = secret_values()
    assert "/work/main/somewhere" not in values
    assert "tok-1234567890" in values
    data = redact({"path": "/work/main/somewhere/file.parquet", "note": "uses tok-1234567890"}, values)
    assert data == {"path": "/work/main/somewhere/file.parquet", "note": "uses ***"}
