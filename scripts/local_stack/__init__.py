"""``make stack``: docker-compose.yaml's services as local processes under supervisord, on
127.0.0.1, no Docker. ``python -m scripts.local_stack up|down|status``; README.md here explains how
the compose file becomes processes and what it cannot emulate."""
