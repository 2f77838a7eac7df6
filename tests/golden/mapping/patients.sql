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
