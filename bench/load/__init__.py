"""Load benchmark: whole scripted conversations through the gateway vs. Rasa's REST webhook.

    .venv/bin/python -m bench.load [--concurrency 1 20] [--conversations N] [--url URL --rasa-url URL]
                                   [--out bench/RESULTS.md]

See ``bench/load/__main__.py`` for the method; results go to the ``## Load`` section of
bench/RESULTS.md.
"""
