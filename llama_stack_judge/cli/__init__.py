"""The ``llama-stack-judge`` command (``main.py``): one module per command over the shared parts.

The shared parts: the judge choice (``judge_choice.py``), the stack (``stack.py``), the answer selection
(``selection.py``) and judging (``judging.py``).
"""
