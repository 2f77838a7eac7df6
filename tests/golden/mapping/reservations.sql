-- Generated from tests/unit/mapping/reservations.json (topic clinic.public.reservations).

-- target reservations/requests: table "booking"."requests", connection clinic
-- write_sql, 15 parameters:
--   $1 target id
--   $2 source topic
--   $3 source key (the message key text)
--   $4 value of column "legacy_id"
--   $5 a value inside of column "patient_name"
--   $6 a value inside of column "patient_name"
--   $7 value of column "service"
--   $8 value of column "period"
--   $9 a value inside of column "preferred_date"
--   $10 value of column "label"
--   $11 keep the stored "patient_name" (unchanged TOASTed source value)
--   $12 keep the stored "service" (unchanged TOASTed source value)
--   $13 keep the stored "period" (unchanged TOASTed source value)
--   $14 keep the stored "preferred_date" (unchanged TOASTed source value)
--   $15 keep the stored "label" (unchanged TOASTed source value)
WITH up AS (
    INSERT INTO "booking"."requests" AS t ("legacy_id", "patient_name", "service", "period", "preferred_date", "label")
    SELECT $4, (initcap($5) || ' (' || $6 || ')'), $7, $8, $9::date, $10
    ON CONFLICT ("legacy_id") DO UPDATE SET
        "patient_name" = CASE WHEN $11::boolean THEN t."patient_name" ELSE EXCLUDED."patient_name" END,
        "service" = CASE WHEN $12::boolean THEN t."service" ELSE EXCLUDED."service" END,
        "period" = CASE WHEN $13::boolean THEN t."period" ELSE EXCLUDED."period" END,
        "preferred_date" = CASE WHEN $14::boolean THEN t."preferred_date" ELSE EXCLUDED."preferred_date" END,
        "label" = CASE WHEN $15::boolean THEN t."label" ELSE EXCLUDED."label" END
    RETURNING json_build_array(t."legacy_id"::text)::text AS target_key
), old AS (
    DELETE FROM dualsync.links AS l USING up
    WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text
      AND l.target_key <> up.target_key
    RETURNING l.target_key
), link AS (
    INSERT INTO dualsync.links (target, source_topic, source_key, target_key)
    SELECT $1::text, $2::text, $3::text, up.target_key FROM up
    ON CONFLICT DO NOTHING
)
SELECT true AS applied;

-- unlink_sql, 3 parameters ($1 target id, $2 source topic, $3 source key):
DELETE FROM dualsync.links AS l
WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text;

-- truncate_sql, 2 parameters ($1 target id, $2 source topic):
DELETE FROM dualsync.links AS l
WHERE l.target = $1::text AND l.source_topic = $2::text;
