"""LLM-as-judge scoring and eval providers for llama-stack."""

__version__ = "0.1.0"
