-- The legacy clinic schema, as the application (Prisma) created it before the migration:
-- TEXT ids, camelCase quoted column names, enums for roles, statuses and service types,
-- free-text preferred times. dualsync captures these tables; the application keeps writing
-- them unchanged.

CREATE TYPE "UserRole" AS ENUM ('ADMIN', 'DOCTOR', 'NURSE', 'RECEPTIONIST', 'PATIENT');
CREATE TYPE "AppointmentStatus" AS ENUM ('SCHEDULED', 'CONFIRMED', 'COMPLETED', 'CANCELLED', 'NO_SHOW');
CREATE TYPE "ServiceType" AS ENUM ('CONSULTATION', 'CHECKUP', 'VACCINATION', 'DENTAL', 'PHYSIOTHERAPY', 'LAB_TEST');
CREATE TYPE "ReservationStatus" AS ENUM ('PENDING', 'CONFIRMED', 'CANCELLED');

CREATE TABLE clinics (
    "id"        TEXT PRIMARY KEY,
    "name"      TEXT NOT NULL,
    "subdomain" TEXT NOT NULL UNIQUE
);

CREATE TABLE users (
    "id"             TEXT PRIMARY KEY,
    "clinicId"       TEXT NOT NULL REFERENCES clinics ("id"),
    "email"          TEXT NOT NULL,
    "name"           TEXT NOT NULL,
    "role"           "UserRole" NOT NULL,
    "specialization" TEXT,
    "licenseNumber"  TEXT,
    "experience"     INTEGER,
    "isActive"       BOOLEAN NOT NULL DEFAULT true,
    "createdAt"      TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"      TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE patients (
    "id"          TEXT PRIMARY KEY,
    "clinicId"    TEXT NOT NULL REFERENCES clinics ("id"),
    "name"        TEXT NOT NULL,
    "phone"       TEXT,
    "email"       TEXT,
    "dateOfBirth" DATE,
    "gender"      TEXT,
    "notes"       TEXT,
    "createdAt"   TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE appointments (
    "id"        TEXT PRIMARY KEY,
    "clinicId"  TEXT NOT NULL REFERENCES clinics ("id"),
    "doctorId"  TEXT NOT NULL REFERENCES users ("id"),
    "patientId" TEXT NOT NULL REFERENCES patients ("id"),
    "startsAt"  TIMESTAMP(3) NOT NULL,
    "status"    "AppointmentStatus" NOT NULL DEFAULT 'SCHEDULED',
    "reason"    TEXT
);

CREATE TABLE reservations (
    "id"            TEXT PRIMARY KEY,
    "clinicId"      TEXT NOT NULL REFERENCES clinics ("id"),
    "patientName"   TEXT NOT NULL,
    "phone"         TEXT NOT NULL,
    "serviceType"   "ServiceType" NOT NULL,
    "preferredDate" DATE NOT NULL,
    "preferredTime" TEXT NOT NULL,
    "status"        "ReservationStatus" NOT NULL DEFAULT 'PENDING',
    "createdAt"     TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE offers (
    "id"       TEXT PRIMARY KEY,
    "clinicId" TEXT NOT NULL REFERENCES clinics ("id"),
    "title"    TEXT NOT NULL,
    "visible"  BOOLEAN NOT NULL DEFAULT true
);

CREATE TABLE patient_offers (
    "id"        TEXT PRIMARY KEY,
    "patientId" TEXT NOT NULL REFERENCES patients ("id"),
    "offerId"   TEXT NOT NULL REFERENCES offers ("id"),
    "assigned"  BOOLEAN NOT NULL DEFAULT false
);
