-- Generated from tests/unit/mapping/patients.json (topic clinic.public.patients).

-- target patients/global_patients: table "public"."global_patients", connection clinic
-- write_sql, 15 parameters:
--   $1 target id
--   $2 source topic
--   $3 source key (the message key text)
--   $4 value of column "id"
--   $5 value of column "phone"
--   $6 value of column "name"
--   $7 value of column "email"
--   $8 a value inside of column "birth_date"
--   $9 value of column "notes"
--   $10 value of column "origin"
--   $11 keep the stored "phone" (unchanged TOASTed source value)
--   $12 keep the stored "name" (unchanged TOASTed source value)
--   $13 keep the stored "email" (unchanged TOASTed source value)
--   $14 keep the stored "birth_date" (unchanged TOASTed source value)
--   $15 keep the stored "notes" (unchanged TOASTed source value)
WITH up AS (
    INSERT INTO "public"."global_patients" AS t ("id", "phone", "name", "email", "birth_date", "notes", "origin")
    SELECT $4, $5, $6, $7, $8::date, $9, $10
    ON CONFLICT ("id") DO UPDATE SET
        "phone" = CASE WHEN $11::boolean THEN t."phone" ELSE EXCLUDED."phone" END,
        "name" = CASE WHEN $12::boolean THEN t."name" ELSE EXCLUDED."name" END,
        "email" = CASE WHEN $13::boolean THEN t."email" ELSE EXCLUDED."email" END,
        "birth_date" = CASE WHEN $14::boolean THEN t."birth_date" ELSE EXCLUDED."birth_date" END,
        "notes" = CASE WHEN $15::boolean THEN t."notes" ELSE EXCLUDED."notes" END,
        "origin" = EXCLUDED."origin"
    RETURNING json_build_array(t."id"::text)::text AS target_key
), old AS (
    DELETE FROM dualsync.links AS l USING up
    WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text
      AND l.target_key <> up.target_key
    RETURNING l.target_key
), link AS (
    INSERT INTO dualsync.links (target, source_topic, source_key, target_key)
    SELECT $1::text, $2::text, $3::text, up.target_key FROM up
    ON CONFLICT DO NOTHING
), orphan AS (
    SELECT r."id"
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."global_patients",
        json_build_object('id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND x.source_key = $3::text))
), gone AS (
    DELETE FROM "public"."global_patients" AS t
    USING orphan AS o WHERE t."id" = o."id"
)
SELECT true AS applied;

-- unlink_sql, 3 parameters ($1 target id, $2 source topic, $3 source key):
WITH old AS (
    DELETE FROM dualsync.links AS l
    WHERE l.target = $1::text AND l.source_topic = $2::text AND l.source_key = $3::text
    RETURNING l.target_key
), orphan AS (
    SELECT r."id"
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."global_patients",
        json_build_object('id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND x.source_key = $3::text))
)
DELETE FROM "public"."global_patients" AS t
USING orphan AS o WHERE t."id" = o."id";

-- truncate_sql, 2 parameters ($1 target id, $2 source topic):
WITH old AS (
    DELETE FROM dualsync.links AS l
    WHERE l.target = $1::text AND l.source_topic = $2::text
    RETURNING l.target_key
), orphan AS (
    SELECT r."id"
    FROM old AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."global_patients",
        json_build_object('id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND x.source_topic <> $2::text)
)
DELETE FROM "public"."global_patients" AS t
USING orphan AS o WHERE t."id" = o."id";

-- batch statement ($1 target id, $2 source topic, $3..$15 arrays of write_sql's $3..$15, $16 ord, $17 op):
WITH i AS (
    SELECT * FROM unnest($3::T3[], $4::T4[], $5::T5[], $6::T6[], $7::T7[], $8::T8[], $9::T9[], $10::T10[], $11::T11[], $12::T12[], $13::T13[], $14::T14[], $15::T15[], $16::bigint[], $17::text[])
        AS i(p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15, ord, op)
), w AS (
    SELECT i.*, true AS ok, json_build_array(r."id"::text)::text AS target_key
    FROM i CROSS JOIN LATERAL json_populate_record(NULL::"public"."global_patients", json_build_object('id', i.p4)) AS r
    WHERE i.op = 'u'
), up AS (
    INSERT INTO "public"."global_patients" AS t ("id", "phone", "name", "email", "birth_date", "notes", "origin")
    SELECT DISTINCT ON (i.target_key) i.p4, i.p5, i.p6, i.p7, i.p8::date, i.p9, i.p10
    FROM w AS i WHERE i.ok ORDER BY i.target_key, i.ord DESC
    ON CONFLICT ("id") DO UPDATE SET
        "phone" = EXCLUDED."phone",
        "name" = EXCLUDED."name",
        "email" = EXCLUDED."email",
        "birth_date" = EXCLUDED."birth_date",
        "notes" = EXCLUDED."notes",
        "origin" = EXCLUDED."origin"
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
), orphan AS (
    SELECT r."id"
    FROM (SELECT DISTINCT target_key FROM old) AS o CROSS JOIN LATERAL json_populate_record(NULL::"public"."global_patients",
        json_build_object('id', o.target_key::json->>0)) AS r
    WHERE NOT EXISTS (SELECT 1 FROM moved AS m WHERE m.target_key = o.target_key)
      AND NOT EXISTS (SELECT 1 FROM dualsync.links AS x
        WHERE x.target = $1::text AND x.target_key = o.target_key
          AND NOT (x.source_topic = $2::text AND x.source_key IN (SELECT m.source_key FROM moved AS m)))
), gone AS (
    DELETE FROM "public"."global_patients" AS t
    USING orphan AS o WHERE t."id" = o."id"
)
SELECT i.ord FROM w AS i WHERE NOT i.ok;
