-- Devices log in to the embedded MQTT broker with their ID and a password; only its
-- SHA-256 is kept.
ALTER TABLE iot_devices ADD COLUMN secret_hash TEXT;
