"""The Rasa project: domain, stories and rules (data/), custom actions (actions/, run by the
gateway on Python 3.11) and custom NLU components (components/, run by Rasa on Python 3.10).

Nothing is imported here, because the two halves live in different Python environments."""
