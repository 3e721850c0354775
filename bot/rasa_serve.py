"""Start ``rasa run`` with its API token taken from the environment, never from the command line.

``rasa run --auth-token T`` would show T to every user of the machine in ``ps``; the gateway
instead starts ``python -m bot.rasa_serve run ...`` with ``RASA_AUTH_TOKEN`` in the child's
environment (readable by the same user only), and this adds the flag inside the process.
The gateway channel's token (GATEWAY_CHANNEL_TOKEN) and the action server's (ACTION_SERVER_TOKEN)
are read from the same environment by bot/gateway_channel.py and bot/endpoints.yml.
Rasa's hot spots fixed in process: bot/rasa_patches.py.
"""

from __future__ import annotations

import os
import sys


def with_token(args: list[str], token: str) -> list[str]:
    """``args`` plus the API token, as one word: a token may start with "-", which argparse would
    otherwise take for a flag (Rasa then exits at start)."""
    if token and not any(a == "--auth-token" or a.startswith("--auth-token=") for a in args):
        return [*args, f"--auth-token={token}"]
    return list(args)


def main() -> None:
    args = with_token(sys.argv[1:], os.environ.pop("RASA_AUTH_TOKEN", ""))
    from rasa.__main__ import main as rasa_main

    from bot import rasa_patches

    rasa_patches.apply()

    sys.argv = ["rasa", *args]
    rasa_main()


if __name__ == "__main__":
    main()
