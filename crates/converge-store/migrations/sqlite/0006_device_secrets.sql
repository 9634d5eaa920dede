-- Moved to the MQTT gateway's own migrations, with the rest of its tables.
SELECT 1;
