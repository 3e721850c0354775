"""The website widget channel: one ``<script>`` tag that adds a chat panel to any page.

``routes.py`` serves ``/widget.js``, the ``/demo`` store page, the websocket ``/api/v1/ws`` and the
REST fallback; ``identity.py`` turns a browser token or a signed user id into a sender id;
``hub.py`` keeps the open sockets per sender and is the channel's pusher (agent replies, queue
updates). The wire format is described in ``protocol.py``.
"""
