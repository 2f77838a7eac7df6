-- The tables of the Debezium golden scenario (tests/golden/README.md, "Debezium goldens").
-- Run in a fresh database before the connector (or capture) starts.

CREATE TYPE golden_mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN golden_positive AS integer CHECK (VALUE > 0);

-- One column per type of docs/type-mapping.md. REPLICA IDENTITY FULL with a primary key:
-- updates and deletes carry the whole old row, the key is the primary key.
CREATE TABLE golden_types (
    id integer PRIMARY KEY,
    c_smallint smallint,
    c_integer integer,
    c_bigint bigint,
    c_oid oid,
    c_real real,
    c_double double precision,
    c_numeric numeric(12, 3),
    c_numeric_free numeric,
    c_money money,
    c_bool boolean,
    c_bytea bytea,
    c_json json,
    c_jsonb jsonb,
    c_date date,
    c_time time,
    c_time3 time(3),
    c_timetz timetz,
    c_timestamp timestamp,
    c_timestamp3 timestamp(3),
    c_timestamp0 timestamp(0),
    c_timestamptz timestamptz,
    c_timestamptz3 timestamptz(3),
    c_interval interval,
    c_uuid uuid,
    c_text text,
    c_varchar varchar(20),
    c_char char(5),
    c_qchar "char",
    c_name name,
    c_enum golden_mood,
    c_domain golden_positive
);
ALTER TABLE golden_types REPLICA IDENTITY FULL;

-- Arrays of the built-in array types dualsync maps element by element, a 2-D array and an
-- enum array (a string in dualsync today). REPLICA IDENTITY DEFAULT.
CREATE TABLE golden_arrays (
    id integer PRIMARY KEY,
    a_int2 smallint[],
    a_int4 integer[],
    a_int8 bigint[],
    a_oid oid[],
    a_float4 real[],
    a_float8 double precision[],
    a_numeric numeric[],
    a_bool boolean[],
    a_text text[],
    a_varchar varchar(10)[],
    a_bpchar char(3)[],
    a_name name[],
    a_qchar "char"[],
    a_uuid uuid[],
    a_date date[],
    a_time time[],
    a_timestamp timestamp[],
    a_timestamptz timestamptz[],
    a_interval interval[],
    a_json json[],
    a_jsonb jsonb[],
    a_bytea bytea[],
    a_int4_2d integer[][],
    a_enum golden_mood[]
);

-- REPLICA IDENTITY DEFAULT: updates carry no old row, deletes only the key; a primary-key
-- update is a delete (+ tombstone) and a create.
CREATE TABLE golden_default (
    id integer PRIMARY KEY,
    v text,
    n bigint
);

-- REPLICA IDENTITY FULL without a primary key.
CREATE TABLE golden_nopk (
    a integer,
    b text
);
ALTER TABLE golden_nopk REPLICA IDENTITY FULL;

-- A value stored out of line and uncompressed: an update of another column sends it as
-- "unchanged TOAST".
CREATE TABLE golden_toast (
    id integer PRIMARY KEY,
    big text,
    n integer
);
ALTER TABLE golden_toast ALTER COLUMN big SET STORAGE EXTERNAL;

-- Truncated in the changes.
CREATE TABLE golden_truncate (
    id integer PRIMARY KEY,
    v text
);
