#!/bin/sh
# Entrypoint of the framewire services in docker-compose.secure.yml: runs the command with secrets read from
# files. For each FRAMEWIRE_X_FILE=PATH in the environment, FRAMEWIRE_X gets the file's content (the
# convention of the official postgres image's POSTGRES_PASSWORD_FILE); when FRAMEWIRE_X is already set, the
# file's lines are added after its own, so FRAMEWIRE_KAFKA_OPTIONS can keep the settings that are not secret
# in the compose file and take sasl.username and sasl.password from a docker secret (a later line wins).
# Secrets so reach the process's environment, never its command line (which `ps` shows to every user) nor
# the compose file.
set -eu

file=
current=
for var in $(env | sed -n 's/^\(FRAMEWIRE_[A-Z0-9_]*\)_FILE=.*/\1/p'); do
    eval "file=\${${var}_FILE}"
    if [ ! -r "$file" ]; then
        echo "${var}_FILE=$file cannot be read: is the secret mounted (docker-compose secrets:) and readable?" >&2
        exit 1
    fi
    value=$(cat "$file")
    eval "current=\${${var}:-}"
    if [ -n "$current" ]; then
        value="$current
$value"
    fi
    export "$var=$value"
    unset "${var}_FILE"
done

exec "$@"
