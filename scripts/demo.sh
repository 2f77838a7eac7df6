#!/usr/bin/env bash
# demo.sh: the clinic migration end to end on this machine, with no change to the
# application.
#
#   bash scripts/demo.sh            (after: sudo bash scripts/setup.sh)
#
# Starts a throwaway PostgreSQL 15 and a single-node Kafka, creates the legacy clinic schema
# with seed-like data (7 doctors, 20 patients of whom two are one person in two clinics,
# 43 appointments, reservations with free-text preferred times, offers) and the new schema,
# starts `dualsync capture` (which backfills the existing rows from a consistent snapshot,
# then streams) and `dualsync apply` (the mappings of mappings/clinic/), runs a write load
# on the legacy tables while printing the lag, then runs `dualsync verify`, lists the
# dead letters (the reservations whose preferred time cannot be parsed, for manual review)
# and shows `dualsync status` with every partition's lag at 0, then stops capture and apply
# and ends the migration with `dualsync teardown`, which leaves nothing on the database.
# Nothing is left running when it ends, or when interrupted.
#
# DS_DEMO_LOAD_SECONDS sets how long the write load runs (default 15).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${DS_BUILD_DIR:-$here/build}
load_seconds=${DS_DEMO_LOAD_SECONDS:-15}

say() { printf '\n== %s\n' "$*"; }

if [ ! -x "$build/dualsync" ] || [ ! -x "$build/tests/topic_dump" ]; then
    say "building dualsync into $build"
    cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j2 >/dev/null
fi
export DS_TOPIC_DUMP="$build/tests/topic_dump"
dualsync=$build/dualsync

svc=$(mktemp -d /tmp/dualsync-demo.XXXXXX)
chmod 755 "$svc"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
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

say "the legacy clinic database, as the application has it (years of rows already there)"
sql -f "$here/mappings/clinic/legacy_schema.sql" -f "$here/mappings/clinic/legacy_seed.sql"
sql -At -F' ' -c "SELECT 'doctors', count(*) FILTER (WHERE role = 'DOCTOR') FROM users
                  UNION ALL SELECT 'patients', count(*) FROM patients
                  UNION ALL SELECT 'appointments', count(*) FROM appointments
                  UNION ALL SELECT 'reservations', count(*) FROM reservations" | sed 's/^/  /'
say "the new schema (global/clinic tables, services instead of the ServiceType enum)"
sql -f "$here/mappings/clinic/new_schema.sql"

cat > "$svc/clinic.json" <<JSON
{
  "source": {
    "conninfo": "host=$PGHOST port=$PGPORT user=$PGUSER dbname=clinic",
    "tables": ["public.users", "public.patients", "public.appointments",
               "public.reservations", "public.offers", "public.patient_offers"]
  },
  "kafka": {"bootstrap.servers": "$DS_KAFKA_BOOTSTRAP"},
  "topic_prefix": "clinic",
  "targets": {"clinic": {"conninfo": "host=$PGHOST port=$PGPORT user=$PGUSER dbname=clinic"}},
  "mappings": ["$here/mappings/clinic/users.json", "$here/mappings/clinic/patients.json",
               "$here/mappings/clinic/appointments.json", "$here/mappings/clinic/reservations.json",
               "$here/mappings/clinic/patient_offers.json", "$here/mappings/clinic/offers.json"]
}
JSON

say "starting dualsync capture (backfill from a snapshot, then live changes) and apply"
"$dualsync" capture --config "$svc/clinic.json" 2> "$svc/capture.log" &
pids+=($!)
"$dualsync" apply --config "$svc/clinic.json" 2> "$svc/apply.log" &
pids+=($!)

# Lag: WAL the slot has not confirmed (capture), and changes in Kafka apply has not applied.
print_lag() {
    local slot_lag applied ends
    slot_lag=$(sql -At -c "SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint FROM pg_replication_slots WHERE slot_name = 'dualsync'")
    applied=$(sql -At -c "SELECT coalesce(sum(next_offset), 0) FROM dualsync.offsets" 2>/dev/null || echo 0)
    ends=$("$DS_TOPIC_DUMP" -b "$DS_KAFKA_BOOTSTRAP" -t clinic.public.users -t clinic.public.patients \
              -t clinic.public.appointments -t clinic.public.reservations -t clinic.public.patient_offers \
              -t clinic.public.offers \
              -i 300 -T 20000 2>/dev/null | wc -l)
    printf '  %s  capture lag %8s bytes of WAL   apply lag %5d changes\n' "$(date +%T)" "${slot_lag:-?}" $((ends - applied))
}

say "the application keeps writing for ${load_seconds}s (inserts, updates, role changes, deletes)"
psql -X -q -d clinic > "$svc/load.log" 2>&1 <<SQL &
DO \$\$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '$load_seconds seconds';
    i int := 0;
    c text;
BEGIN
    WHILE clock_timestamp() < deadline LOOP
        i := i + 1;
        c := (ARRAY['clinic-seoul', 'clinic-busan', 'clinic-incheon'])[1 + i % 3];
        INSERT INTO patients ("id", "clinicId", "name", "phone", "email", "dateOfBirth")
        VALUES ('load-patient-' || i, c, 'Load Patient ' || i, '010-3' || lpad(i::text, 3, '0') || '-' || lpad(i::text, 4, '0'),
                'load' || i || '@mail.example', DATE '1980-01-01' + i);
        INSERT INTO appointments ("id", "clinicId", "doctorId", "patientId", "startsAt", "reason")
        SELECT 'load-appt-' || i, c, u."id", 'load-patient-' || i, now() + (i || ' hours')::interval, 'load ' || i
          FROM users u WHERE u."clinicId" = c AND u."role" = 'DOCTOR' ORDER BY u."id" LIMIT 1;
        INSERT INTO reservations ("id", "clinicId", "patientName", "phone", "serviceType", "preferredDate", "preferredTime")
        VALUES ('load-resv-' || i, c, 'Guest ' || i, '010-8888-' || lpad(i::text, 4, '0'),
                (ARRAY['CONSULTATION', 'CHECKUP', 'DENTAL'])[1 + i % 3]::"ServiceType", current_date + i,
                (ARRAY['10:00', '3:30 PM', '오후', 'morning'])[1 + i % 4]);
        UPDATE patients SET "phone" = '010-4' || lpad(i::text, 3, '0') || '-0000' WHERE "id" = 'load-patient-' || (i - 5);
        IF i % 7 = 0 THEN
            DELETE FROM reservations WHERE "id" = 'load-resv-' || (i - 3);
        END IF;
        IF i = 20 THEN
            UPDATE users SET "role" = 'ADMIN' WHERE "id" = 'doctor-7';
        ELSIF i = 40 THEN
            UPDATE users SET "role" = 'DOCTOR', "specialization" = 'General', "licenseNumber" = 'LIC-20001' WHERE "id" = 'nurse-1';
        END IF;
        COMMIT;
        PERFORM pg_sleep(0.05);
    END LOOP;
END
\$\$;
SQL
load_pid=$!
pids+=("$load_pid")
while kill -0 "$load_pid" 2>/dev/null; do
    print_lag
    sleep 2
done
wait "$load_pid" || { cat "$svc/load.log"; exit 1; }
echo "  the write load committed $(sql -At -c "SELECT count(*) FROM patients WHERE id LIKE 'load-%'") new patients"
print_lag

say "dualsync verify: are the new tables exactly what the mappings give from the legacy ones?"
status=0
"$dualsync" verify --config "$svc/clinic.json" --timeout-ms 120000 2> "$svc/verify.log" || status=$?
if [ "$status" -ne 0 ]; then
    echo "verify exited with status $status"; sed 's/^/  /' "$svc/verify.log"
    echo "last lines of apply's log:"; tail -n 40 "$svc/apply.log" | sed 's/^/  /'
    exit 1
fi
sql -At -c "SELECT format('  appointments with clinicDoctorId and clinicPatientId: %s of %s', count(*) FILTER (WHERE \"clinicDoctorId\" IS NOT NULL AND \"clinicPatientId\" IS NOT NULL), count(*)) FROM appointments"
sql -At -c "SELECT format('  (%s appointments are with a user who is no longer a doctor: they wait in dualsync.pending for a clinic doctor profile)', count(*)) FROM appointments a JOIN users u ON u.id = a.\"doctorId\" WHERE u.role <> 'DOCTOR'"
sql -At -c "SELECT format('  global patients: %s for %s legacy patients (one person seen in two clinics is one row)', (SELECT count(*) FROM global_patients), (SELECT count(*) FROM patients))"

say "dead letters for manual review (dualsync dlq list)"
"$dualsync" dlq list --config "$svc/clinic.json" 2> "$svc/dlq.log" | sed 's/^/  /'

say "metrics for Prometheus: capture http://127.0.0.1:9187/metrics, apply http://127.0.0.1:9188/metrics (docs/metrics.md)"
python3 - <<'PY' || { echo "the metrics endpoints do not answer"; exit 1; }
import urllib.request
SHOWN = ("dualsync_capture_seconds_behind_source", "dualsync_capture_slot_retained_wal_bytes",
         "dualsync_apply_seconds_behind_source", "dualsync_apply_consumer_lag_messages")
for port in (9187, 9188):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in body.splitlines():
        if line.startswith(SHOWN):
            print("  " + line)
PY

say "dualsync status: the slot, every partition's lag (0: all applied), pending rows, dead letters"
status=0
"$dualsync" status --config "$svc/clinic.json" --max-lag-messages 0 2> "$svc/status.log" \
    | sed 's/^/  /' || status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
    echo "status exited with status $status"; sed 's/^/  /' "$svc/status.log"; exit 1
fi

say "stopping apply and capture (SIGTERM: finish, confirm, exit 0)"
for pid in "${pids[@]:0:2}"; do
    kill -TERM "$pid"
done
for pid in "${pids[@]:0:2}"; do
    wait "$pid" || { echo "a dualsync process exited with $?"; tail "$svc/capture.log" "$svc/apply.log"; exit 1; }
done
pids=()

say "dualsync teardown: the end of the migration (slot, publication, bookkeeping, topics)"
status=0
"$dualsync" teardown --config "$svc/clinic.json" --yes --topics 2> "$svc/teardown.log" \
    | sed 's/^/  /' || status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
    echo "teardown exited with status $status"; sed 's/^/  /' "$svc/teardown.log"; exit 1
fi
left=$(sql -Atc "SELECT (SELECT count(*) FROM pg_replication_slots)
                              + (SELECT count(*) FROM pg_publication)
                              + (SELECT count(*) FROM pg_namespace WHERE nspname = 'dualsync')")
if [ "$left" != "0" ]; then
    echo "teardown left $left slot(s), publication(s) or dualsync schema(s) behind"; exit 1
fi
say "done: every target matched; no slot, publication or bookkeeping is left on the database"
