"""Local stand-ins for third-party services we cannot reach in tests (Telegram, WeChat), speaking
their real wire formats over real HTTP, plus a TCP fault injector for taking a dependency down."""
