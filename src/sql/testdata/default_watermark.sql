CREATE SOURCE clicks (page STRING, at TIMESTAMP, dwell DOUBLE) WITH (connector = 'file');
CREATE FEATURE VIEW page_clicks AS
SELECT page, COUNT(*), AVG(dwell), MAX(dwell) FROM clicks GROUP BY page
