"""Names and texts a plant file gives in one language or several.

A line, machine or plant name and a reason text may be a string (``Body welding``) or a
map by language (``{en: Body welding, zh-CN: 车身焊装}``). Either way the model holds a
``LocalText``: a ``str`` whose value is the English text (the first one given when there
is no English), so the HTTP API, the logs and every existing caller keep reading plain
English, while the screens ask ``in_language`` for theirs. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

Language = Literal["en", "zh-CN"]
LANGUAGES: tuple[str, ...] = ("en", "zh-CN")  # as written in plant files and ``?lang=``
DEFAULT_LANGUAGE: Language = "en"
MAX_TEXT = 200  # a name longer than this is a paste accident, and no screen has room for it


class LocalText(str):
    """A text with its translations (``translations``: language -> text, may be empty)."""

    translations: dict[str, str]

    def __new__(cls, text: str, translations: dict[str, str] | None = None) -> LocalText:
        obj = super().__new__(cls, text)
        obj.translations = dict(translations or {})
        return obj

    def in_language(self, language: str) -> str:
        """The text in ``language``; the base (English) text where none is given."""
        return self.translations.get(language) or str(self)

    @classmethod
    def parse(cls, value: str | dict[str, str]) -> LocalText:
        """A string, or a non-empty map from a known language to a non-empty string."""
        if isinstance(value, str):
            return cls(value)  # as before maps were allowed: any string
        if not value:
            raise ValueError(f"give a text, or one per language ({', '.join(LANGUAGES)})")
        unknown = [k for k in value if k not in LANGUAGES]
        if unknown:
            raise ValueError(f"unknown language {unknown[0]!r}: use one of {', '.join(LANGUAGES)}")
        for language, text in value.items():
            _check(text, language)
        base = value.get(DEFAULT_LANGUAGE) or next(iter(value.values()))
        return cls(base, value)

    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, _handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        by_language = core_schema.dict_schema(core_schema.str_schema(), core_schema.str_schema())
        return core_schema.no_info_after_validator_function(
            cls.parse,
            core_schema.union_schema([core_schema.str_schema(), by_language]),
            serialization=core_schema.plain_serializer_function_ser_schema(_dump),
        )


def _check(text: str, language: str) -> None:
    where = f" ({language})"
    if len(text) > MAX_TEXT:
        raise ValueError(f"text{where} longer than {MAX_TEXT} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"text{where} holds a control character")
    if not text.strip():
        raise ValueError(f"empty text for {language}")


def _dump(value: Any) -> Any:
    translations = getattr(value, "translations", None)
    return dict(translations) if translations else str(value)


def in_language(text: object, language: str) -> str:
    """Any name or text (``LocalText`` or plain ``str``) in ``language``."""
    if isinstance(text, LocalText):
        return text.in_language(language)
    return "" if text is None else str(text)
