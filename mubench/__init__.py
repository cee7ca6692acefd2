"""mubench: judging machine unlearning as a safety-alignment tool for LLMs."""

__version__ = "0.1.0"
