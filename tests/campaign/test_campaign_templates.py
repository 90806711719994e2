"""MessageTemplates renders every row as jinja2's Template.render does: same text, same errors."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import TemplateError, UndefinedError, meta
from jinja2.sandbox import SecurityError

from relay_integrations.campaign.templates import MessageTemplates

TEMPLATES = [
    "Hi {{ name }}, order {{ order }} has shipped.",
    "{{ name | upper }} {% for i in range(n) %}{{ i }},{% endfor %}",
    "{{ missing }}",
    "{{ 10 / n }}",
    "{{ name.__class__ }}",
    "{{ ''.__class__.__mro__ }}",
    "{% set ns = namespace(total=0) %}{% for i in range(n) %}{% set ns.total = ns.total + i %}{% endfor %}"
    "{{ ns.total }}",
    "{{ lipsum is defined }} {{ dict(a=name) }} {{ cycler is defined }}",
    "{{ name ~ order | default('none') }}",
    "{{ n + name }}",
    "{% for i in range(n) %}{{ order }}{% endfor %}",  # a global (range) beside a missing column
]

rows = st.fixed_dictionaries(
    {"name": st.one_of(st.text(max_size=8), st.integers()), "n": st.integers(min_value=-2, max_value=4)},
    optional={"order": st.text(max_size=5), "range": st.just("shadowed")},
)


def _jinja2_outcome(templates: MessageTemplates, source: str, row: dict[str, Any]) -> tuple[str, str]:
    """What Template.render gives, mapped to the message MessageTemplates.render reports.

    An undefined variable is the one message we word differently on purpose: every column the
    template uses that the row lacks, and the row's columns (jinja2 names only the first)."""
    template = templates.environment.from_string(source)
    try:
        return "text", template.render(row)
    except SecurityError as exc:
        return "error", f"template not allowed in the sandbox: {exc}"
    except UndefinedError as exc:
        used = meta.find_undeclared_variables(templates.environment.parse(source))
        missing = sorted(v for v in used if v not in row and v not in templates.environment.globals)
        if not missing:
            return "error", str(exc.message or exc)
        return "error", f"missing column(s) {', '.join(missing)}; this row has: {', '.join(map(str, row)) or 'none'}"
    except TemplateError as exc:
        return "error", str(exc.message or exc)
    except Exception as exc:
        return "error", f"{type(exc).__name__}: {exc}"


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(TEMPLATES), rows)
def test_render_matches_jinja2_template_render(source: str, row: dict[str, Any]) -> None:
    templates = MessageTemplates(source)
    values, errors = templates.render(row, row=7)
    if errors:
        (error,) = errors
        assert (error.field, error.row) == ("text", 7)
        assert ("error", error.message) == _jinja2_outcome(templates, source, row)
    else:
        assert ("text", values["text"]) == _jinja2_outcome(templates, source, row)


def test_row_values_shadow_globals_as_in_jinja2() -> None:
    values, errors = MessageTemplates("{{ range }}").render({"range": "mine"})
    assert (values, errors) == ({"text": "mine"}, [])
