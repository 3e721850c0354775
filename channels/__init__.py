"""Customer channels: the REST API (``rest.py``), the website widget (``widget/``), and the push
channels, one module each (``telegram.py``, ``wechat.py``: a ``channel.PushChannel`` subclass that
verifies + parses inbound updates into ``ChannelMessage`` and renders + delivers the replies),
registered in ``registry.py`` and run over the generic ``relay.py`` and ``outbox.py``."""
