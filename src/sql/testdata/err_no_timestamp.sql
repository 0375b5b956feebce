CREATE SOURCE plays (user_id STRING, ms BIGINT);
