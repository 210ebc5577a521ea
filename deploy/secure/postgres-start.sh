#!/bin/sh
# Entrypoint of PostgreSQL in docker-compose.secure.yml. PostgreSQL serves TLS only with a key file that is
# its own and that nobody else can read, while a docker-compose secret is a bind mount that keeps the host
# file's owner and mode: the key is copied where only postgres reads it, then the image starts as usual.
set -eu
install -m 600 -o postgres -g postgres /run/secrets/postgres_tls_key /var/lib/postgresql/server-key.pem
exec docker-entrypoint.sh "$@"
