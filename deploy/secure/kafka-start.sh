#!/bin/sh
# Starts the Kafka node of docker-compose.secure.yml from kafka.properties. The keystore password comes
# from a docker secret and is added to a copy of the properties inside the container only. The SCRAM user
# the framewire services log in with is created when the storage is first formatted
# (`kafka-storage format --add-scram`), before the broker accepts any client; its name and password are
# read from the same secret the services read (kafka_credentials, librdkafka syntax), so the two cannot
# differ.
set -eu

setting() {
    sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" /run/secrets/kafka_credentials | tail -n 1
}
user=$(setting sasl.username)
password=$(setting sasl.password)
if [ -z "$user" ] || [ -z "$password" ]; then
    echo "kafka_credentials needs sasl.username=... and sasl.password=... lines (deploy/secure/make-secrets.sh)" >&2
    exit 1
fi

props=$(mktemp)
chmod 600 "$props"
keystore_password=$(cat /run/secrets/kafka_keystore_password)
{
    cat /etc/framewire/kafka.properties
    printf 'ssl.keystore.password=%s\nssl.key.password=%s\n' "$keystore_password" "$keystore_password"
} >"$props"

# --ignore-formatted: on a restart the storage, and the user in it, are already there. The password is on
# this command line for the moment the tool runs, visible only inside this container.
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id "$CLUSTER_ID" --config "$props" \
    --add-scram "SCRAM-SHA-512=[name=$user,password=$password]"
exec /opt/kafka/bin/kafka-server-start.sh "$props"
