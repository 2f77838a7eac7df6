-- The new clinic schema the migration moves to (../shared/seeds 000-003): a doctor and a
-- patient become a global person plus one profile per clinic; the ServiceType enum becomes
-- the services lookup table; free-text preferredTime becomes a typed period. Existing
-- legacy tables gain nullable columns that dualsync fills in place.
--
-- Ids of new rows are UUID v5 of the legacy ids (see the mappings), so the same legacy row
-- always gives the same new id and a replay rebuilds identical ids.

CREATE TYPE "TimePeriod" AS ENUM ('MORNING', 'AFTERNOON');

CREATE TABLE global_doctors (
    "id"            UUID PRIMARY KEY,
    "legacyUserId"  TEXT NOT NULL UNIQUE,
    "name"          TEXT NOT NULL,
    "email"         TEXT NOT NULL,
    "licenseNumber" TEXT,
    "createdAt"     TIMESTAMP(3) NOT NULL
);

CREATE TABLE clinic_doctors (
    "id"             UUID PRIMARY KEY,
    "globalDoctorId" UUID NOT NULL REFERENCES global_doctors ("id") ON DELETE CASCADE,
    "clinicId"       TEXT NOT NULL REFERENCES clinics ("id"),
    "specialization" TEXT,
    "licenseNumber"  TEXT,
    "experience"     INTEGER,
    "isActive"       BOOLEAN NOT NULL DEFAULT true,
    UNIQUE ("globalDoctorId", "clinicId")
);

-- One row per person: the same date of birth and the same normalised phone number (or,
-- without a phone, the same trimmed lower-case email) are the same person.
CREATE TABLE global_patients (
    "id"          UUID PRIMARY KEY,
    "name"        TEXT NOT NULL,
    "phone"       TEXT,
    "email"       TEXT,
    "dateOfBirth" DATE
);

CREATE TABLE clinic_patients (
    "id"              UUID PRIMARY KEY,
    -- Deferred: the patients mapping writes global_patients before clinic_patients, so when
    -- a patient's identity changes (a new phone number) or its last clinic profile goes, the
    -- old global row is removed a statement before the profile stops pointing to it. The
    -- reference is checked when the transaction commits, as it must hold then.
    "globalPatientId" UUID NOT NULL REFERENCES global_patients ("id") DEFERRABLE INITIALLY DEFERRED,
    "clinicId"        TEXT NOT NULL REFERENCES clinics ("id"),
    "legacyPatientId" TEXT NOT NULL UNIQUE,
    "name"            TEXT NOT NULL,
    "phone"           TEXT,
    "email"           TEXT,
    "gender"          TEXT
);

-- The ServiceType enum as a table: code = the enum label.
CREATE TABLE services (
    "id"       UUID PRIMARY KEY,
    "code"     TEXT NOT NULL UNIQUE,
    "name"     TEXT NOT NULL,
    "duration" INTEGER NOT NULL
);
INSERT INTO services VALUES
    ('5b0c9a8e-0b4e-4f55-9a49-1f3d8c7a0001', 'CONSULTATION', 'Consultation', 30),
    ('5b0c9a8e-0b4e-4f55-9a49-1f3d8c7a0002', 'CHECKUP', 'General checkup', 45),
    ('5b0c9a8e-0b4e-4f55-9a49-1f3d8c7a0003', 'VACCINATION', 'Vaccination', 15),
    ('5b0c9a8e-0b4e-4f55-9a49-1f3d8c7a0004', 'DENTAL', 'Dental care', 60),
    ('5b0c9a8e-0b4e-4f55-9a49-1f3d8c7a0005', 'PHYSIOTHERAPY', 'Physiotherapy', 50),
    ('5b0c9a8e-0b4e-4f55-9a49-1f3d8c7a0006', 'LAB_TEST', 'Laboratory test', 20);

-- New nullable columns on legacy tables, filled in place by dualsync.
ALTER TABLE appointments
    ADD COLUMN "clinicDoctorId"  UUID REFERENCES clinic_doctors ("id") ON DELETE SET NULL,
    ADD COLUMN "clinicPatientId" UUID REFERENCES clinic_patients ("id") ON DELETE SET NULL;
ALTER TABLE reservations
    ADD COLUMN "serviceId"         UUID REFERENCES services ("id"),
    ADD COLUMN "serviceName"       TEXT,
    ADD COLUMN "estimatedDuration" INTEGER,
    ADD COLUMN "period"            "TimePeriod";
ALTER TABLE patient_offers
    ADD COLUMN "clinicId" TEXT REFERENCES clinics ("id");
