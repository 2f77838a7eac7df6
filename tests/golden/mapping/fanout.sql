-- Generated from tests/unit/mapping/fanout.json (topic clinic.public.users).

-- target fanout/doctor_appointments: table "public"."appointments", connection legacy, in place
-- write_sql, 5 parameters:
--   $1 keep the stored "globalDoctorId" (unchanged TOASTed source value)
--   $2 a value inside of column "globalDoctorId"
--   $3 keep the stored "statusLabel" (unchanged TOASTed source value)
--   $4 value of column "statusLabel"
--   $5 value of column "doctorId"
WITH up AS (
    UPDATE "public"."appointments" AS t SET
        "globalDoctorId" = CASE WHEN $1::boolean THEN t."globalDoctorId" ELSE (SELECT lk1."id" FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = $2) END,
        "statusLabel" = CASE WHEN $3::boolean THEN t."statusLabel" ELSE $4 END
    WHERE t."doctorId" = $5
      AND (EXISTS (SELECT 1 FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = $2) OR $2 IS NULL)
      AND ROW(t."globalDoctorId", t."statusLabel") IS DISTINCT FROM ROW(CASE WHEN $1::boolean THEN t."globalDoctorId" ELSE (SELECT lk1."id" FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = $2) END, CASE WHEN $3::boolean THEN t."statusLabel" ELSE $4 END)
)
SELECT (EXISTS (SELECT 1 FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = $2) OR $2 IS NULL) AS applied;

-- batch statement ($1..$5 arrays of write_sql's $1..$5, $6 ord, $7 op):
WITH i AS (
    SELECT * FROM unnest($1::T1[], $2::T2[], $3::T3[], $4::T4[], $5::T5[], $6::bigint[], $7::text[])
        AS i(p1, p2, p3, p4, p5, ord, op)
), w AS (
    SELECT i.*, (EXISTS (SELECT 1 FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = i.p2) OR i.p2 IS NULL) AS ok FROM i
), up AS (
    UPDATE "public"."appointments" AS t SET
        "globalDoctorId" = CASE WHEN i.p1 THEN t."globalDoctorId" ELSE (SELECT lk1."id" FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = i.p2) END,
        "statusLabel" = CASE WHEN i.p3 THEN t."statusLabel" ELSE i.p4 END
    FROM (SELECT DISTINCT ON (i.p5) * FROM w AS i WHERE i.ok ORDER BY i.p5, i.ord DESC) AS i
    WHERE t."doctorId" = i.p5 AND ROW(t."globalDoctorId", t."statusLabel") IS DISTINCT FROM ROW(CASE WHEN i.p1 THEN t."globalDoctorId" ELSE (SELECT lk1."id" FROM "public"."global_doctors" AS lk1 WHERE lk1."legacy_id" = i.p2) END, CASE WHEN i.p3 THEN t."statusLabel" ELSE i.p4 END)
)
SELECT i.ord FROM w AS i WHERE NOT i.ok;

-- no form without links
