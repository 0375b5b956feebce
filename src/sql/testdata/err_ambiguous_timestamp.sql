CREATE SOURCE plays (user_id STRING, created TIMESTAMP, updated TIMESTAMP);
