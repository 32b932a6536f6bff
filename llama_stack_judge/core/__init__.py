"""The judge core: definitions, templates, verdicts, aggregation and the concurrent runner.

Nothing in this package imports llama-stack, so a later stack only needs new adapters.
"""
