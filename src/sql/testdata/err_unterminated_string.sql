CREATE SOURCE ev (k STRING, ts TIMESTAMP) WITH (connector = 'kafka);
