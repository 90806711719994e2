"""Message templates: Jinja2 in a sandbox, strict about undefined variables.

The text and every other templated message field (subject, title, sender, ...) are compiled once;
rendering a recipient row returns the values or the errors, one per field, so a validation pass
can report every bad row and field instead of stopping at the first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment, SecurityError

TEXT_FIELD = "text"


@dataclass(frozen=True)
class FieldError:
    """A problem with one field; ``row`` is None when the template itself is wrong (every row)."""

    field: str
    message: str
    row: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


def make_environment() -> SandboxedEnvironment:
    # Messages are plain text: no HTML autoescaping. The sandbox stops templates from reaching
    # Python internals through recipient data; StrictUndefined turns a missing variable into an error.
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


def load_template_source(template: str | Path) -> str:
    """The template text: a :class:`~pathlib.Path` is read from disk (UTF-8), a str is the template."""
    if isinstance(template, Path):
        return template.read_text(encoding="utf-8")
    return template


def _syntax_message(exc: TemplateSyntaxError) -> str:
    return f"template syntax error at line {exc.lineno}: {exc.message}"


class MessageTemplates:
    """The compiled text template plus the templated message fields.

    :param text: the message text template.
    :param fields: other message fields; str values are templates, other values are used as they are.
    """

    def __init__(self, text: str, fields: Mapping[str, Any] | None = None) -> None:
        self.environment = make_environment()
        self.errors: list[FieldError] = []
        self._compiled: dict[str, Any] = {}
        # Template.render copies the environment's globals (a ChainMap) for every call; a plain dict
        # snapshot taken once gives each row the same context for a fraction of the cost.
        self._globals: dict[str, Any] = dict(self.environment.globals)
        self._constants: dict[str, Any] = {}
        self._variables: dict[str, frozenset[str]] = {}
        for name, source in {TEXT_FIELD: text, **dict(fields or {})}.items():
            if not isinstance(source, str):
                self._constants[name] = source
                continue
            try:
                self._compiled[name] = self.environment.from_string(source)
                self._variables[name] = frozenset(meta.find_undeclared_variables(self.environment.parse(source)))
            except TemplateSyntaxError as exc:
                self.errors.append(FieldError(name, _syntax_message(exc)))

    @property
    def ok(self) -> bool:
        """Every template compiled."""
        return not self.errors

    def render(self, context: Mapping[str, Any], row: int | None = None) -> tuple[dict[str, Any], list[FieldError]]:
        """Render every field for one recipient row: ``(values, errors)``."""
        values: dict[str, Any] = dict(self._constants)
        errors: list[FieldError] = []
        for name, template in self._compiled.items():
            try:
                values[name] = self._render(template, context)
            except SecurityError as exc:
                errors.append(FieldError(name, f"template not allowed in the sandbox: {exc}", row))
            except UndefinedError as exc:
                errors.append(FieldError(name, self._undefined_message(name, context, exc), row))
            except TemplateError as exc:
                errors.append(FieldError(name, str(exc.message or exc), row))
            except Exception as exc:  # a filter or operator failing on this row's data (e.g. 1/0)
                errors.append(FieldError(name, f"{type(exc).__name__}: {exc}", row))
        return values, errors

    def _render(self, template: Template, context: Mapping[str, Any]) -> str:
        """What ``template.render(context)`` does, errors included, with the context built cheaply."""
        env = self.environment
        ctx = env.context_class(env, dict(self._globals, **context), template.name, template.blocks,
                                globals=self._globals)
        try:
            return str(env.concat(template.root_render_func(ctx)))
        except Exception:
            env.handle_exception()

    def _undefined_message(self, name: str, context: Mapping[str, Any], exc: UndefinedError) -> str:
        """Every column the template uses that the row lacks (not only the first), and the row's columns."""
        # Globals (range, dict, lipsum...) are undeclared in the template's source but never missing.
        missing = sorted(v for v in self._variables.get(name, ()) if v not in context and v not in self._globals)
        if not missing:
            return str(exc.message or exc)
        columns = ", ".join(str(k) for k in context) or "none"
        return f"missing column(s) {', '.join(missing)}; this row has: {columns}"
