#!/bin/sh
# Runs once, when the postgres container initialises its cluster: lets pg-agent's pg_basebackup and
# pg_receivewal connect for replication over the compose network (with a password, like every other
# connection). The image's default pg_hba.conf only allows replication from the container itself.
set -e
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
