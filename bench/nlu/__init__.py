"""NLU benchmark: trains a Rasa config and evaluates it on the live pipeline.

Run from the project root with the Rasa environment:
    .venv-rasa/bin/python -m bench.nlu --help
"""
