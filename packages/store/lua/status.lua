-- Records a new notification's status (lib/status.lua), e.g. `queued` or `scheduled` before the
-- API adds its fan-out job.
-- KEYS[1] status hash
-- ARGV: expireAt, state, target, createdAt, exp, targets, deliverAt ('' for none), jobId ('' for none),
--   apiKey (id of the publishing API key, '' for none)
herald_status_new(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9])
return 1
