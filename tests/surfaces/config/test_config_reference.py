"""The configuration reference in docs/ is generated from, and checked against, the
config classes."""

from __future__ import annotations

from surfaces.config.reference import BEGIN, DOC, END, HELP, fields, render_reference, splice


def test_every_config_field_is_described() -> None:
    names = {name for name, _, _ in fields()}
    assert names == set(HELP), "describe new fields in surfaces/config/reference.py HELP"


def test_docs_reference_is_up_to_date() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert BEGIN in text
    assert END in text
    assert splice(text) == text, "run: python -m surfaces.config.reference --write"


def test_reference_names_the_legacy_environment_variables() -> None:
    table = render_reference()
    for env in (
        "MATRIX_HOMESERVER",
        "MATRIX_AGENT_REGISTRY_PATH",
        "AGENT_BASE_URL",
        "SURFACES_WORKSPACE_DIR",
        "SURFACES_STATE_DIR",
        "SURFACES_BOT__LOCALE",
    ):
        assert f"`{env}`" in table
