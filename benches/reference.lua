-- The reference: the minimum a correct apply of one event to
-- one member needs, as one script call per event (run by
-- `redis-benchmark -P 16 ... EVALSHA <sha> 1 '{m:__rand_int__}' ...`).
--
-- KEYS[1]  the member's hash (its hash tag is the member)
-- ARGV[1]  the event id (the outcome key is KEYS[1] .. ':o:' .. ARGV[1],
--          under the same hash tag)
-- ARGV[2]  the new state blob
-- ARGV[3]  the 60-byte outcome
-- ARGV[4]  the outcome's time to live, seconds
--
-- Returns 0 for a repeat (the outcome exists), else 1.
local outcome = KEYS[1] .. ':o:' .. ARGV[1]
if redis.call('EXISTS', outcome) == 1 then
  return 0
end
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
redis.call('HSET', KEYS[1], 'v', v + 1, 's', ARGV[2])
redis.call('SET', outcome, ARGV[3], 'EX', ARGV[4])
return 1
