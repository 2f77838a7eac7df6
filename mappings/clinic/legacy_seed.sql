-- Seed-like legacy data (../shared/seeds 001): 7 doctors over 3 clinics, 20 patients of whom
-- two are the same person registered in two clinics, 43 appointments, reservations whose
-- preferredTime comes in several formats (a few unparseable), offers and patient_offers.
-- Deterministic: the same rows every run.

INSERT INTO clinics VALUES
    ('clinic-seoul', 'Seoul Central Clinic', 'seoul'),
    ('clinic-busan', 'Busan Harbor Clinic', 'busan'),
    ('clinic-incheon', 'Incheon Family Clinic', 'incheon');

INSERT INTO users ("id", "clinicId", "email", "name", "role", "specialization", "licenseNumber", "experience")
SELECT 'doctor-' || g,
       (ARRAY['clinic-seoul', 'clinic-busan', 'clinic-incheon'])[1 + g % 3],
       'doctor' || g || '@clinic.example',
       (ARRAY['Kim Min-jun', 'Lee Seo-yeon', 'Park Ji-ho', 'Choi Ha-eun', 'Jung Do-yun', 'Kang Seo-ah', 'Yoon Ji-woo'])[g],
       'DOCTOR',
       (ARRAY['Cardiology', 'Dermatology', 'Pediatrics', 'Orthopedics', 'Neurology', 'Dentistry', 'General'])[g],
       'LIC-' || (10000 + g), 3 + g
  FROM generate_series(1, 7) g;

INSERT INTO users ("id", "clinicId", "email", "name", "role")
VALUES ('admin-1', 'clinic-seoul', 'admin@clinic.example', 'Admin', 'ADMIN'),
       ('nurse-1', 'clinic-busan', 'nurse@clinic.example', 'Han Nurse', 'NURSE');

INSERT INTO patients ("id", "clinicId", "name", "phone", "email", "dateOfBirth", "gender")
SELECT 'patient-' || g,
       (ARRAY['clinic-seoul', 'clinic-busan', 'clinic-incheon'])[1 + g % 3],
       'Patient ' || g,
       '010-' || lpad((1000 + g)::text, 4, '0') || '-' || lpad((2000 + g * 7)::text, 4, '0'),
       'patient' || g || '@mail.example',
       DATE '1970-01-01' + (g * 523),
       CASE WHEN g % 2 = 0 THEN 'F' ELSE 'M' END
  FROM generate_series(1, 18) g;
-- The same person registered in two clinics, with the phone written two ways.
INSERT INTO patients ("id", "clinicId", "name", "phone", "email", "dateOfBirth", "gender") VALUES
    ('patient-19', 'clinic-seoul', 'Song Yu-na', '010-5555-1234', 'Yuna.Song@mail.example', '1988-04-12', 'F'),
    ('patient-20', 'clinic-busan', 'Song Yuna', '+82 10 5555 1234', 'yuna.song@mail.example ', '1988-04-12', 'F');

-- An appointment is with a doctor of the clinic it takes place in (the patient's clinic): the
-- doctors of that clinic take turns. A doctor of another clinic would have no clinic_doctors
-- profile there for the appointment to point to.
INSERT INTO appointments ("id", "clinicId", "doctorId", "patientId", "startsAt", "status", "reason")
SELECT 'appt-' || g,
       p."clinicId",
       d."id",
       p."id",
       TIMESTAMP '2025-01-06 09:00' + (g || ' hours')::interval * 5,
       (ARRAY['SCHEDULED', 'CONFIRMED', 'COMPLETED', 'CANCELLED'])[1 + g % 4]::"AppointmentStatus",
       'visit ' || g
  FROM generate_series(1, 43) g
  JOIN patients p ON p."id" = 'patient-' || (1 + g % 20)
  CROSS JOIN LATERAL (
      SELECT u."id"
        FROM users u
       WHERE u."role" = 'DOCTOR' AND u."clinicId" = p."clinicId"
       ORDER BY u."id"
      OFFSET g % (SELECT count(*) FROM users c WHERE c."role" = 'DOCTOR' AND c."clinicId" = p."clinicId")
       LIMIT 1) d;

INSERT INTO reservations ("id", "clinicId", "patientName", "phone", "serviceType", "preferredDate", "preferredTime")
SELECT 'resv-' || g,
       (ARRAY['clinic-seoul', 'clinic-busan', 'clinic-incheon'])[1 + g % 3],
       'Guest ' || g,
       '010-7777-' || lpad(g::text, 4, '0'),
       (ARRAY['CONSULTATION', 'CHECKUP', 'VACCINATION', 'DENTAL', 'PHYSIOTHERAPY', 'LAB_TEST'])[1 + g % 6]::"ServiceType",
       DATE '2025-02-01' + g,
       (ARRAY['10:00', '14:30', '2:30 PM', 'morning', '오전', '오후', '09:15', 'afternoon', 'asap', '11:45 AM', 'after lunch maybe', '16:00'])[1 + g % 12]
  FROM generate_series(1, 24) g;

INSERT INTO offers VALUES
    ('offer-1', 'clinic-seoul', 'Spring checkup package', true),
    ('offer-2', 'clinic-busan', 'Dental cleaning discount', true),
    ('offer-3', 'clinic-incheon', 'Flu vaccination', false);

INSERT INTO patient_offers ("id", "patientId", "offerId", "assigned")
SELECT 'po-' || g, 'patient-' || g, 'offer-' || (1 + g % 3), g % 2 = 0
  FROM generate_series(1, 12) g;
