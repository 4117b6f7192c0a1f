-- Compare-and-set of one member's state (see the module docs of redis/mod.rs).
--
-- KEYS[1]  the member's hash: fields `v` (version) and `s` (encoded state)
-- ARGV[1]  the version the writer loaded (decimal; an absent hash is "0")
-- ARGV[2]  the new encoded state
-- ARGV[3]  time to live in milliseconds, or "" to keep the state forever
--
-- Returns 1 when written (`v` becomes ARGV[1] + 1), 0 when another writer
-- came first (nothing changed).
--
-- Versions are compared as strings: both sides are canonical decimals (the
-- store formats ARGV[1], HINCRBY writes `v`), and Lua numbers are doubles
-- that would round versions above 2^53.
local stored = redis.call('HGET', KEYS[1], 'v')
if not stored then
  stored = '0'
end
if stored ~= ARGV[1] then
  return 0
end
-- HINCRBY does the increment in 64-bit integers inside Redis.
redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 's', ARGV[2])
if ARGV[3] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
end
return 1
