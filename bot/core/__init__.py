"""Settings, errors, PII, clocks, phone numbers, tabular files and the database: what every domain uses."""
