"""rasa-sdk actions, served by the gateway at /actions/webhook.

One module per business area: ``forms`` (slot validation and identity checks), ``orders``
(status, tracking, refunds, returns, cancellation, address), ``account`` (password reset) and
``knowledge`` (help-centre answers, clarifying questions and
feedback; also what the NLU cannot place). Business rules live in ``store.policies``.
"""
