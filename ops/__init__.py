"""Support ops: review inbox, PII redaction, annotations, retraining with a regression gate, the
model and KB-index registry (promote / roll back), and analytics.

Kept import-light on purpose: ``ops.rasa_eval`` runs inside the Rasa environment (Python 3.10,
none of the app's packages), so nothing here may import the app's dependencies at package level.
See README "Support ops" for the routes and the CLI (``python -m ops --help``).
"""
