"""Conversations: the one service every channel goes through (store the inbound message, ask
Rasa, store what came back and what the bot understood), plus the language handling and the
connection to Rasa (client and supervised child process)."""
