-- APPROX_HISTOGRAM (log-scaled or explicit bins, canonicalized) and APPROX_TOP_K (heavy hitters
-- with counts and an error bound) next to the exact-until-large TOP_K.
CREATE SOURCE plays (user_id STRING, track_id STRING, ms_played BIGINT, score DOUBLE, ts TIMESTAMP);
CREATE FEATURE VIEW user_sketches AS
SELECT user_id,
  APPROX_HISTOGRAM(ms_played, 'log10') AS ms_magnitudes,
  APPROX_HISTOGRAM(ms_played, ' LOG2 ') AS ms_octaves,
  APPROX_HISTOGRAM(score, '0, 1e1,100.0') AS score_bins,
  APPROX_HISTOGRAM(score, '-0.5') AS score_sign,
  APPROX_TOP_K(track_id, 10) AS heavy_tracks,
  APPROX_TOP_K(track_id, 10, 2000) AS heavy_tracks_wide,
  TOP_K(track_id, 10) AS top_tracks
FROM plays
GROUP BY user_id;
