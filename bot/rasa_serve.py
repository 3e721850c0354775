"""Start ``rasa run`` with its API token taken from the environment, never from the command line.

``rasa run --auth-token T`` would show T to every user of the machine in ``ps``; the gateway
instead starts ``python -m bot.rasa_serve run ...`` with ``RASA_AUTH_TOKEN`` in the child's
environment (readable by the same user only), and this adds the flag inside the process.
The gateway channel's token (GATEWAY_CHANNEL_TOKEN) and the action server's (ACTION_SERVER_TOKEN)
are read from the same environment by bot/gateway_channel.py and bot/endpoints.yml.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    args = sys.argv[1:]
    token = os.environ.pop("RASA_AUTH_TOKEN", "")
    if token and "--auth-token" not in args:
        args.append(f"--auth-token={token}")  # one word: a token may start with "-" (argparse would take it for a flag)
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *args]
    rasa_main()


if __name__ == "__main__":
    main()
