"""Validation of written files against CEINMS 0.9's own XSD schemas (../shared/peers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from project_paths import PROJECT_ROOT

XSD_DIR = (PROJECT_ROOT / ".." / "shared" / "peers" / "ceinms-0.9" / "cfg" / "XSD").resolve()


def assert_valid(path: Path, schema: str) -> None:
    """Fail with the schema's messages unless ``path`` validates against ``XSD_DIR/schema``;
    skip when the CEINMS source (or lxml) is absent."""
    etree = pytest.importorskip("lxml.etree")
    if not (XSD_DIR / schema).is_file():
        pytest.skip(f"CEINMS schemas not found at {XSD_DIR}")
    xsd = etree.XMLSchema(etree.parse(str(XSD_DIR / schema)))
    document = etree.parse(str(path))
    assert xsd.validate(document), f"{path} vs {schema}: {xsd.error_log}"
