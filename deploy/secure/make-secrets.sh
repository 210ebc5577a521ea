#!/usr/bin/env bash
# Makes, with openssl, what docker-compose.secure.yml mounts:
#   certs/    certificates, nothing secret: ca.pem (a CA of your own), kafka.pem, postgres.pem, web.pem
#   secrets/  keys, passwords, the web token: the CA's key and the servers' keys, kafka_keystore.p12 and its
#             password, kafka_credentials (the SCRAM user, librdkafka syntax), postgres_password,
#             framewire_db (the store's URL, with sslmode=verify-full) and web_token
# Usage: deploy/secure/make-secrets.sh [DIR]   (DIR: where certs/ and secrets/ go; the repository root by default)
# FRAMEWIRE_WEB_HOSTS: the names browsers use for the web view, comma-separated (default localhost,127.0.0.1).
# It never overwrites: to make new ones, move the old directories away first.
set -euo pipefail

dir="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
web_hosts="${FRAMEWIRE_WEB_HOSTS:-localhost,127.0.0.1}"
certs="$dir/certs"
secrets="$dir/secrets"
for d in "$certs" "$secrets"; do
    if [[ -e "$d" ]]; then
        echo "$d exists: move it away to make new certificates and secrets (running services use the old ones)" >&2
        exit 1
    fi
done
command -v openssl >/dev/null || { echo "openssl is needed (apt-get install openssl)" >&2; exit 1; }

umask 077
mkdir -p "$certs" "$secrets"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

random() { openssl rand -hex 24; }

# subjectAltName from comma-separated names: addresses as IP:, the rest as DNS:.
san() {
    local out=() host hosts
    IFS=, read -ra hosts <<<"$1"
    for host in "${hosts[@]}"; do
        if [[ "$host" =~ ^[0-9.]+$ || "$host" == *:* ]]; then out+=("IP:$host"); else out+=("DNS:$host"); fi
    done
    (IFS=,; echo "${out[*]}")
}

openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -days 3650 \
    -subj "/CN=framewire CA" -keyout "$secrets/ca-key.pem" -out "$certs/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# server NAME NAMES: certs/NAME.pem and secrets/NAME-key.pem, for the comma-separated host NAMES.
server() {
    local name="$1" names="$2"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -subj "/CN=${names%%,*}" \
        -keyout "$secrets/$name-key.pem" -out "$work/$name.csr" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
        "$(san "$names")" >"$work/$name.ext"
    openssl x509 -req -in "$work/$name.csr" -CA "$certs/ca.pem" -CAkey "$secrets/ca-key.pem" -CAcreateserial \
        -CAserial "$work/ca.srl" -days 825 -extfile "$work/$name.ext" -out "$certs/$name.pem" 2>/dev/null
}
# The names the services reach each other by on the compose network; kafka also as localhost, for tools run
# inside its container.
server kafka kafka,localhost
server postgres postgres
server web "$web_hosts"

# Kafka reads its certificate and key from a PKCS#12 keystore.
random >"$secrets/kafka_keystore_password"
openssl pkcs12 -export -name kafka -in "$certs/kafka.pem" -inkey "$secrets/kafka-key.pem" -certfile "$certs/ca.pem" \
    -passout "file:$secrets/kafka_keystore_password" -out "$secrets/kafka_keystore.p12"

printf 'sasl.username=framewire\nsasl.password=%s\n' "$(random)" >"$secrets/kafka_credentials"
postgres_password="$(random)"
printf '%s\n' "$postgres_password" >"$secrets/postgres_password"
printf 'postgres://framewire:%s@postgres:5432/framewire?sslmode=verify-full&sslrootcert=/certs/ca.pem\n' \
    "$postgres_password" >"$secrets/framewire_db"
random >"$secrets/web_token"

# The containers run as their own users (nobody, appuser, postgres), and a mounted secret keeps its host
# mode: the files are readable, and the directories are the owner's alone, so no other account on this
# machine can reach them. The CA's key is never mounted.
chmod 755 "$certs"
chmod 700 "$secrets"
chmod 644 "$certs"/*.pem "$secrets"/*
chmod 600 "$secrets/ca-key.pem"
echo "made $certs and $secrets (web view certificate for: $web_hosts)"
