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

-- batch statement ($1..$6 arrays of write_sql's $1..$6, $7 ord, $8 op):
WITH i AS (
    SELECT * FROM unnest($1::T1[], $2::T2[], $3::T3[], $4::T4[], $5::T5[], $6::T6[], $7::bigint[], $8::text[])
        AS i(p1, p2, p3, p4, p5, p6, ord, op)
), w AS (
    SELECT i.*, (EXISTS (SELECT 1 FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = i.p2) OR i.p2 IS NULL) AS ok FROM i
), up AS (
    UPDATE "public"."appointments" AS t SET
        "globalDoctorId" = CASE WHEN i.p1 THEN t."globalDoctorId" ELSE (SELECT lk1."id" FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = i.p2) END,
        "statusLabel" = CASE WHEN i.p3 THEN t."statusLabel" ELSE i.p4 END,
        "migratedBy" = i.p5
    FROM (SELECT DISTINCT ON (i.p6) * FROM w AS i WHERE i.ok ORDER BY i.p6, i.ord DESC) AS i
    WHERE t."id" = i.p6
)
SELECT i.ord FROM w AS i WHERE NOT i.ok;

-- no form without links
