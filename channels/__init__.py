"""Customer channels: one module per channel, each parsing and verifying inbound requests into
``conversations.service.InboundMessage`` and rendering the replies for its medium."""
