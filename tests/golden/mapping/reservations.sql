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

-- batch statement ($1 target id, $2 source topic, $3..$15 arrays of write_sql's $3..$15, $16 ord, $17 op):
WITH i AS (
    SELECT * FROM unnest($3::T3[], $4::T4[], $5::T5[], $6::T6[], $7::T7[], $8::T8[], $9::T9[], $10::T10[], $11::T11[], $12::T12[], $13::T13[], $14::T14[], $15::T15[], $16::bigint[], $17::text[])
        AS i(p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15, ord, op)
), w AS (
    SELECT i.*, true AS ok, json_build_array(r."legacy_id"::text)::text AS target_key
    FROM i CROSS JOIN LATERAL json_populate_record(NULL::"booking"."requests", json_build_object('legacy_id', i.p4)) AS r
    WHERE i.op = 'u'
), up AS (
    INSERT INTO "booking"."requests" AS t ("legacy_id", "patient_name", "service", "period", "preferred_date", "label")
    SELECT DISTINCT ON (i.target_key) i.p4, (initcap(i.p5) || ' (' || i.p6 || ')'), i.p7, i.p8, i.p9::date, i.p10
    FROM w AS i WHERE i.ok ORDER BY i.target_key, i.ord DESC
    ON CONFLICT ("legacy_id") DO UPDATE SET
        "patient_name" = EXCLUDED."patient_name",
        "service" = EXCLUDED."service",
        "period" = EXCLUDED."period",
        "preferred_date" = EXCLUDED."preferred_date",
        "label" = EXCLUDED."label"
), moved AS (
    SELECT i.p3 AS source_key, i.target_key FROM w AS i WHERE i.ok
    UNION ALL SELECT i.p3, NULL FROM i WHERE i.op = 'd'
), old AS (
    DELETE FROM dualsync.links AS l
    WHERE l.ctid = ANY (ARRAY(
        SELECT x.ctid FROM moved AS m CROSS JOIN LATERAL (
            SELECT x.ctid FROM dualsync.links AS x
            WHERE x.target = $1::text AND x.source_topic = $2::text AND x.source_key = m.source_key
              AND x.target_key IS DISTINCT FROM m.target_key OFFSET 0) AS x))
    RETURNING l.target_key
), link AS (
    INSERT INTO dualsync.links (target, source_topic, source_key, target_key)
    SELECT $1::text, $2::text, m.source_key, m.target_key FROM moved AS m
    WHERE m.target_key IS NOT NULL
    ON CONFLICT DO NOTHING
)
SELECT i.ord FROM w AS i WHERE NOT i.ok;
