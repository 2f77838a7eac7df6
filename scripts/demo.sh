#!/usr/bin/env bash
# demo.sh: the clinic migration's capture side, end to end, on this machine.
#
#   bash scripts/demo.sh            (after: sudo bash scripts/setup.sh)
#
# Starts a throwaway PostgreSQL 15 and a single-node Kafka, creates the legacy clinic schema
# (mappings/clinic/legacy_schema.sql), starts `dualsync capture`, loads seed-like data and
# a write load (inserts, updates including a role change, deletes, a primary-key change),
# waits until the replication slot confirms everything (every change acknowledged by
# Kafka), prints what each topic holds and a sample Debezium message, then stops it all.
# Nothing is left running when it ends, or when interrupted.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${DS_BUILD_DIR:-$here/build}

say() { printf '\n== %s\n' "$*"; }

if [ ! -x "$build/dualsync" ] || [ ! -x "$build/tests/topic_dump" ]; then
    say "building dualsync into $build"
    cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j2 >/dev/null
fi
export DS_TOPIC_DUMP="$build/tests/topic_dump"

svc=$(mktemp -d /tmp/dualsync-demo.XXXXXX)
chmod 755 "$svc"
capture_pid=
cleanup() {
    if [ -n "$capture_pid" ] && kill -0 "$capture_pid" 2>/dev/null; then
        kill -TERM "$capture_pid" 2>/dev/null || true
        wait "$capture_pid" 2>/dev/null || true
    fi
    bash "$here/tests/harness/services.sh" stop "$svc" >/dev/null 2>&1 || true
    rm -rf "$svc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "starting PostgreSQL 15 (wal_level=logical) and Kafka 3.9.1 (KRaft) on local ports"
bash "$here/tests/harness/services.sh" start "$svc" >/dev/null
# shellcheck disable=SC1091
source "$svc/env.sh"
sql() { psql -X -q -v ON_ERROR_STOP=1 -d clinic "$@"; }
psql -X -q -d postgres -c "CREATE DATABASE clinic"
sql -f "$here/mappings/clinic/legacy_schema.sql"
echo "legacy schema: $(sql -At -c "SELECT string_agg(tablename, ', ' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'")"

tables='"public.clinics", "public.users", "public.patients", "public.appointments", "public.reservations", "public.offers", "public.patient_offers"'
cat > "$svc/capture.json" <<JSON
{
  "source": {
    "conninfo": "host=$PGHOST port=$PGPORT user=$PGUSER dbname=clinic",
    "publication": "dualsync",
    "slot": "dualsync",
    "tables": [$tables]
  },
  "kafka": {"bootstrap.servers": "$DS_KAFKA_BOOTSTRAP"},
  "topic_prefix": "clinic"
}
JSON

say "starting: dualsync capture --config capture.json"
"$build/dualsync" capture --config "$svc/capture.json" 2> "$svc/capture.log" &
capture_pid=$!
for _ in $(seq 1 100); do
    [ "$(sql -At -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'dualsync' AND active")" = 1 ] && break
    kill -0 "$capture_pid" 2>/dev/null || { cat "$svc/capture.log"; exit 1; }
    sleep 0.1
done
sed 's/^/  capture: /' "$svc/capture.log"

say "the application writes: seed data, then a write load on the legacy tables"
sql -f "$here/mappings/clinic/legacy_seed.sql"
sql <<'SQL'
-- a doctor stops practising, a receptionist becomes a doctor
UPDATE users SET "role" = 'ADMIN', "updatedAt" = now() WHERE "id" = 'doctor-7';
UPDATE users SET "role" = 'DOCTOR', "specialization" = 'General', "licenseNumber" = 'LIC-20001'
 WHERE "id" = 'nurse-1';
-- new patient and appointment, an update and a cancellation
INSERT INTO patients ("id", "clinicId", "name", "phone", "email", "dateOfBirth")
VALUES ('patient-21', 'clinic-incheon', 'Oh Ji-min', '010-1212-3434', 'jimin@mail.example', '1995-09-30');
INSERT INTO appointments ("id", "clinicId", "doctorId", "patientId", "startsAt", "reason")
VALUES ('appt-44', 'clinic-incheon', 'doctor-2', 'patient-21', '2025-03-03 10:30', 'first visit');
UPDATE appointments SET "status" = 'CANCELLED' WHERE "id" = 'appt-3';
UPDATE patients SET "phone" = '010-9999-0000' WHERE "id" = 'patient-4';
-- a reservation withdrawn, one whose id is rewritten (a primary-key change)
DELETE FROM reservations WHERE "id" = 'resv-5';
UPDATE reservations SET "id" = 'resv-6b' WHERE "id" = 'resv-6';
SQL
end_lsn=$(sql -At -c "SELECT pg_current_wal_lsn()")

say "waiting until the slot confirms $end_lsn (every change acknowledged by Kafka)"
for _ in $(seq 1 300); do
    [ "$(sql -At -c "SELECT confirmed_flush_lsn >= '$end_lsn' FROM pg_replication_slots WHERE slot_name = 'dualsync'")" = t ] && break
    kill -0 "$capture_pid" 2>/dev/null || { cat "$svc/capture.log"; exit 1; }
    sleep 0.1
done
sql -c "SELECT slot_name, confirmed_flush_lsn, pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)) AS retained_wal FROM pg_replication_slots"

say "what Kafka holds (one topic per legacy table, Debezium JSON)"
for t in clinics users patients appointments reservations offers patient_offers; do
    "$DS_TOPIC_DUMP" -b "$DS_KAFKA_BOOTSTRAP" -t "clinic.public.$t" -i 1500 -T 30000 > "$svc/$t.jsonl"
    python3 - "$svc/$t.jsonl" "clinic.public.$t" <<'PY'
import collections, json, sys
ops = collections.Counter()
for line in open(sys.argv[1]):
    m = json.loads(line)
    ops["tombstone" if m["value"] is None else m["value"]["op"]] += 1
names = {"c": "create", "u": "update", "d": "delete", "t": "truncate", "tombstone": "tombstone"}
print(f"  {sys.argv[2]:30} {sum(ops.values()):3} messages: " +
      ", ".join(f"{n} {names.get(op, op)}" for op, n in sorted(ops.items())))
PY
done

say "a sample: the role change of doctor-7 (clinic.public.users)"
python3 - "$svc/users.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["key"] == {"id": "doctor-7"} and m["value"] and m["value"]["op"] == "u":
        print(json.dumps(m["value"], indent=2, ensure_ascii=False))
PY

say "stopping capture (SIGTERM: wait for Kafka, confirm, exit 0)"
kill -TERM "$capture_pid"
status=0
wait "$capture_pid" || status=$?
capture_pid=
tail -2 "$svc/capture.log" | sed 's/^/  capture: /'
echo "capture exited with status $status"
[ "$status" -eq 0 ]
say "done: every committed change of the legacy tables is in Kafka; nothing is left running"
