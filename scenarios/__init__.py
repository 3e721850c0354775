"""Conversation testing: YAML scenarios run end to end against the live system, with reports.

``python -m scenarios test-conversations [PATH...] [--url URL]``; the format is described in the
README section "Conversation tests", the checks in ``scenarios/checks.py``, the outcome rules in
``scenarios/outcome.py`` and the figures in ``scenarios/report.py``.
"""
