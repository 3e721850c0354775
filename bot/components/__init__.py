"""Rasa 3.6 custom graph components for the multilingual (en / zh / ru) NLU pipeline.

Nothing heavy is imported here: Rasa imports each component module by its dotted path
(``bot.components.tokenizer.MultilingualTokenizer`` etc.) from ``config.yml``.
"""
