"""What both providers use to talk to llama-stack: its inference API, request provider data, registry and stores.

The judge core imports none of this; the scoring and eval providers are thin on top of it.
"""
