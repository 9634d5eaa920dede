-- The gateways' tables moved to the gateways' own migrations (component_migrations), which
-- create them only where they do not exist yet, so databases made before the move keep them.
SELECT 1;
