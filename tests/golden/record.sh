#!/usr/bin/env bash
#
# record.sh: re-records the golden pgoutput inputs in tests/golden/pgoutput/ from a
# throwaway PostgreSQL 15. Run by hand when a scenario changes; the .in files it writes are
# committed and the tests only read them (see tests/golden/README.md).
#
#   tests/golden/record.sh BUILD_DIR [SCENARIO...]
#
# BUILD_DIR holds the built tests/pgoutput_record. Without SCENARIO every scenario is
# recorded. Each scenario gets its own database: its tables, a publication FOR ALL TABLES
# and a pgoutput slot are created first, then the scenario SQL runs, then the slot is
# streamed up to pg_current_wal_lsn() taken right after it.
#
# The server lives in a temporary directory, listens only on a Unix socket there, and is
# stopped (and the directory removed) on exit, failure included. As root, the server runs as
# the postgres user. PGBIN overrides /usr/lib/postgresql/15/bin; GOLDEN_OUT writes the files
# elsewhere (to try a change without touching the committed recordings).

set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD_DIR [SCENARIO...]" >&2
    exit 2
fi

HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "$1" && pwd)
shift
RECORDER=$BUILD/tests/pgoutput_record
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
OUT=${GOLDEN_OUT:-$HERE/pgoutput}

if [ ! -x "$RECORDER" ]; then
    echo "record.sh: $RECORDER not found; build the pgoutput_record target first" >&2
    exit 1
fi
if [ ! -x "$PGBIN/initdb" ]; then
    echo "record.sh: no PostgreSQL server binaries in $PGBIN" >&2
    exit 1
fi

# initdb and postgres refuse to run as root.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

WORK=$(mktemp -d /tmp/ds-golden-XXXXXX)
DATA=$WORK/data
SOCK=$WORK/sock
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
STARTED=0

cleanup() {
    local rc=$?
    if [ "$STARTED" = 1 ]; then
        as_pg "$PGBIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [ $rc -ne 0 ] && [ -f "$WORK/server.log" ]; then
        echo "record.sh: failed; last server log lines:" >&2
        tail -n 20 "$WORK/server.log" >&2 || true
    fi
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$DATA" "$SOCK"
chmod 700 "$DATA"
if [ "$(id -u)" = 0 ]; then
    chown -R postgres: "$WORK"
fi

as_pg "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$WORK/initdb.log" 2>&1 ||
    { cat "$WORK/initdb.log" >&2; exit 1; }
as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$WORK/server.log" -w \
    -o "-c port=$PORT -c listen_addresses='' -c unix_socket_directories=$SOCK -c wal_level=logical -c max_replication_slots=32 -c max_wal_senders=8 -c fsync=off" \
    start >/dev/null
STARTED=1

export PGHOST=$SOCK PGPORT=$PORT PGUSER=postgres PGCLIENTENCODING=UTF8 PGTZ=UTC
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
SERVER_VERSION=$("${PSQL[@]}" -d postgres -Atc "SHOW server_version")

# Prints each line of $2 as a comment under the heading $1.
comment_block() {
    echo "# $1"
    while IFS= read -r line; do
        echo "#   $line"
    done <<<"$2"
}

# record NAME DESCRIPTION SETUP_SQL SCENARIO_SQL
record() {
    local name=$1 description=$2 setup=$3 scenario=$4
    local db=golden_$name slot=golden_$name end tmp

    if [ ${#ONLY[@]} -gt 0 ] && [[ " ${ONLY[*]} " != *" $name "* ]]; then
        return 0
    fi
    echo "recording $name" >&2
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE $db"
    "${PSQL[@]}" -d "$db" <<<"$setup"
    # The publication must exist before the slot: pgoutput looks it up in the historic
    # snapshot of each change.
    "${PSQL[@]}" -d "$db" -c "CREATE PUBLICATION golden FOR ALL TABLES"
    "${PSQL[@]}" -d "$db" -Atc "SELECT pg_create_logical_replication_slot('$slot', 'pgoutput')" >/dev/null
    "${PSQL[@]}" -d "$db" -o /dev/null <<<"$scenario"
    end=$("${PSQL[@]}" -d "$db" -Atc "SELECT pg_current_wal_lsn()")

    tmp=$OUT/.$name.in.tmp
    {
        echo "# Golden pgoutput input: $name"
        echo "# $description"
        echo "# Recorded by tests/golden/record.sh from PostgreSQL $SERVER_VERSION with"
        echo "# START_REPLICATION ... (proto_version '1', publication_names 'golden', messages 'true')"
        echo "# and DateStyle=ISO, IntervalStyle=iso_8601, TimeZone=UTC, extra_float_digits=3."
        comment_block "Setup SQL (before the slot was created):" "$setup"
        comment_block "Scenario SQL:" "$scenario"
        echo "# Streamed up to $end."
        echo "#"
        echo "# Format: one pgoutput message per line, \"<XLogData dataStart LSN> <payload hex>\"."
        "$RECORDER" "host=$SOCK port=$PORT dbname=$db user=postgres" "$slot" golden "$end"
    } >"$tmp" || { rm -f "$tmp"; return 1; }
    mv "$tmp" "$OUT/$name.in"
}

ONLY=("$@")
mkdir -p "$OUT"

record insert_update_delete \
    "A table with an int primary key and a text column: insert, update of the non-key column, delete (three transactions)." \
    "CREATE TABLE items (id int PRIMARY KEY, name text);" \
    "INSERT INTO items VALUES (1, 'first');
UPDATE items SET name = 'renamed' WHERE id = 1;
DELETE FROM items WHERE id = 1;"

record type_matrix \
    "One table with a column per common type (an enum, so a Type message is sent): one row of values, one row of all NULLs." \
    "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE all_types (
    id int PRIMARY KEY,
    c_int2 int2, c_int4 int4, c_int8 int8,
    c_numeric numeric(10,3), c_numeric_nan numeric, c_numeric_big numeric,
    c_float4 float4, c_float4_nan float4, c_float4_ninf float4,
    c_float8 float8, c_float8_nan float8, c_float8_inf float8, c_float8_ninf float8,
    c_float8_small float8,
    c_bool bool, c_text text, c_varchar varchar(20), c_uuid uuid, c_mood mood,
    c_date date, c_time time, c_timestamp timestamp, c_timestamptz timestamptz,
    c_interval interval, c_json json, c_jsonb jsonb, c_bytea bytea,
    c_int_arr int[], c_int_arr_empty int[], c_text_arr text[], c_char3 char(3));" \
    "INSERT INTO all_types VALUES (1,
    -32768, 2147483647, -9223372036854775808,
    1234567.891, 'NaN', 123456789012345678901234567890,
    3.14, 'NaN', '-Infinity',
    2.718281828459045, 'NaN', 'Infinity', '-Infinity',
    1.5e-7,
    true, E'it''s \"quoted\" \\\\ back\\\\slash\\nnew line\\ttab 한국어 😀', 'varchar value',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy',
    '2024-02-29', '23:59:59.999999', '2024-02-29 12:34:56.789012',
    '2024-02-29 12:34:56.789012+00',
    '1 year 2 months 3 days 4 hours 5 minutes 6.5 seconds',
    '{\"a\": [1, 2.5, \"x\"], \"b\": null}', '{\"b\": null, \"a\": [1, 2.5, \"x\"]}',
    '\\x00ff10',
    '{1,NULL,3}', '{}', ARRAY['a,b', 'c d', 'e\"f', 'g\\h', 'NULL', NULL, ''], 'ab');
INSERT INTO all_types (id) VALUES (2);"

record key_change \
    "Update of the primary key under REPLICA IDENTITY DEFAULT, so the old key is sent as a 'K' tuple; then a non-key update of the new row." \
    "CREATE TABLE accounts (id int PRIMARY KEY, email text);" \
    "INSERT INTO accounts VALUES (1, 'a@example.com');
UPDATE accounts SET id = 2 WHERE id = 1;
UPDATE accounts SET email = 'b@example.com' WHERE id = 2;"

record replica_identity_full \
    "A table with a primary key and REPLICA IDENTITY FULL: update and delete send the whole old row as an 'O' tuple." \
    "CREATE TABLE profiles (id int PRIMARY KEY, bio text, score int);
ALTER TABLE profiles REPLICA IDENTITY FULL;" \
    "INSERT INTO profiles VALUES (1, 'hello', 10);
UPDATE profiles SET bio = 'updated', score = NULL WHERE id = 1;
DELETE FROM profiles WHERE id = 1;"

record no_pk_full \
    "A table without a primary key under REPLICA IDENTITY FULL: rows are identified only by their old values." \
    "CREATE TABLE events (kind text, payload text, at int);
ALTER TABLE events REPLICA IDENTITY FULL;" \
    "INSERT INTO events VALUES ('click', 'x', 1), ('view', NULL, 2);
UPDATE events SET payload = 'y' WHERE at = 1;
DELETE FROM events WHERE at = 2;"

record toast_unchanged \
    "A 20 kB non-compressed TOASTed text column (STORAGE EXTERNAL): the insert sends it in full, the update of another column sends it as unchanged ('u')." \
    "CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;" \
    "INSERT INTO docs SELECT 1, 'draft', string_agg(md5(i::text), '' ORDER BY i) FROM generate_series(1, 640) AS i;
UPDATE docs SET title = 'final' WHERE id = 1;"

record truncate \
    "Two tables truncated in one statement, once plain and once with RESTART IDENTITY: one Truncate message names both." \
    "CREATE TABLE parents (id serial PRIMARY KEY, name text);
CREATE TABLE children (id serial PRIMARY KEY, note text);" \
    "INSERT INTO parents (name) VALUES ('p1'), ('p2');
INSERT INTO children (note) VALUES ('c1');
TRUNCATE parents, children;
INSERT INTO parents (name) VALUES ('p3');
TRUNCATE parents, children RESTART IDENTITY;"

record origin \
    "A transaction run with a replication origin set up in its session (the Origin message carries the name and the commit LSN given to pg_replication_origin_xact_setup), then a normal transaction." \
    "CREATE TABLE replicated (id int PRIMARY KEY, source text);" \
    "SELECT pg_replication_origin_create('dualsync');
SELECT pg_replication_origin_session_setup('dualsync');
BEGIN;
SELECT pg_replication_origin_xact_setup('0/1234ABCD', '2024-01-01 00:00:00+00');
INSERT INTO replicated VALUES (1, 'from origin');
COMMIT;
SELECT pg_replication_origin_session_reset();
INSERT INTO replicated VALUES (2, 'local');"

record alter_table \
    "Insert, ADD COLUMN, insert, DROP COLUMN, insert: a new Relation message precedes the first change after each ALTER." \
    "CREATE TABLE widgets (id int PRIMARY KEY, name text);" \
    "INSERT INTO widgets VALUES (1, 'a');
ALTER TABLE widgets ADD COLUMN color text DEFAULT 'red';
INSERT INTO widgets VALUES (2, 'b', 'blue');
ALTER TABLE widgets DROP COLUMN name;
INSERT INTO widgets VALUES (3, 'green');"

record logical_message \
    "A transactional pg_logical_emit_message inside a transaction with one insert, then a non-transactional message outside any transaction, then an insert (PostgreSQL 15 does not flush WAL for a non-transactional message; the insert's commit does)." \
    "CREATE TABLE notes (id int PRIMARY KEY, body text);" \
    "BEGIN;
INSERT INTO notes VALUES (1, 'with message');
SELECT pg_logical_emit_message(true, 'dualsync', 'hello');
COMMIT;
SELECT pg_logical_emit_message(false, 'dualsync-nontx', 'outside');
INSERT INTO notes VALUES (2, 'after the message');"

record multi_statement_tx \
    "One transaction touching two tables with several rows: multi-row inserts, an update of several rows, a delete." \
    "CREATE TABLE customers (id int PRIMARY KEY, name text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric(10,2));" \
    "BEGIN;
INSERT INTO customers VALUES (1, 'ann'), (2, 'bob');
INSERT INTO orders VALUES (10, 1, 9.99), (11, 1, 20.00), (12, 2, 5.50);
UPDATE orders SET total = total + 1 WHERE customer_id = 1;
DELETE FROM orders WHERE id = 12;
COMMIT;"

echo "recorded into $OUT" >&2
