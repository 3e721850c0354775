"""rasa-sdk actions, served by the gateway at /actions/webhook.

One module per business area: ``forms`` (slot validation and identity checks), ``orders``
(status, tracking, refunds, returns, cancellation, address), ``account`` (password reset) and
``fallback`` (the localised two-stage fallback). Business rules live in ``store.policies``.
"""
