"""The LLM path's redaction is the project's one redaction module, ``aisre.redact``: the
same rules clean evidence before it reaches a prompt and before it is written to status,
Events and reports. Kept under this name for the LLM modules that import it from here."""

from aisre.redact import RULES, SECRET_NAME, SECRET_WORDS, redact, redact_text

__all__ = ["RULES", "SECRET_NAME", "SECRET_WORDS", "redact", "redact_text"]
