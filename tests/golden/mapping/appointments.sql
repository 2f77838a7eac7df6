-- Generated from tests/unit/mapping/appointments.json (topic clinic.public.appointments).

-- target appointments/doctor_ref: table "public"."appointments", connection legacy, in place
-- write_sql, 6 parameters:
--   $1 keep the stored "globalDoctorId" (unchanged TOASTed source value)
--   $2 a value inside of column "globalDoctorId"
--   $3 keep the stored "statusLabel" (unchanged TOASTed source value)
--   $4 value of column "statusLabel"
--   $5 value of column "migratedBy"
--   $6 value of column "id"
WITH up AS (
    UPDATE "public"."appointments" AS t SET
        "globalDoctorId" = CASE WHEN $1::boolean THEN t."globalDoctorId" ELSE (SELECT lk1."id" FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = $2) END,
        "statusLabel" = CASE WHEN $3::boolean THEN t."statusLabel" ELSE $4 END,
        "migratedBy" = $5
    WHERE t."id" = $6
      AND (EXISTS (SELECT 1 FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = $2) OR $2 IS NULL)
)
SELECT (EXISTS (SELECT 1 FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = $2) OR $2 IS NULL) AS applied;
