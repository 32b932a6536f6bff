"""MT-bench in one place: data, routing, tasks, a run's work, summaries, report, labels and the eval benchmark.

The judge engine (``core``) and the eval provider know nothing of it: the scoring provider serves its two tasks, and
the eval provider expands a benchmark's rows through the row expander that its metadata names (``benchmark.py``).
"""
