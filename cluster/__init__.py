"""A local cluster on one machine (issue 16): N gateways and M Rasa servers behind HAProxy, on the
PostgreSQL and Redis already running here. ``python -m cluster run --gateways N --rasa M``
(``make run-cluster``); README "Running several replicas".

- ``cli``: the command line (typer).
- ``launcher``: the plan (ports, secrets, environments) and the whole run: start, wait, supervise, stop.
- ``processes``: one supervised child process (restarted when it dies, its pid in a file).
- ``haproxy``: the load balancer's configuration and executable.
- ``database``: the cluster's PostgreSQL schema (fresh per run, or the one given) and its migrations.
"""
