-- Compare-and-set of one member's state and records (see the module docs
-- of redis/mod.rs).
--
-- KEYS[1]  the member's state: a string, the version (8 bytes, big endian)
--          then the encoded state
-- KEYS[2]  the member's records: a hash, event id -> encoded record
-- ARGV[1]  the version the writer loaded, 8 bytes ("" for a new member)
-- ARGV[2]  the new value of KEYS[1]: the next version, then the new state
-- ARGV[3]  the state's time to live in milliseconds, or "" to keep it
-- ARGV[4]  the records' new time to live in milliseconds, or "" to keep it
-- ARGV[5]  remove the records written before this second, or "" (no sweep)
-- ARGV[6..] pairs of event id and encoded record: new or changed records
--
-- Returns 1 when written, 0 when another writer came first (nothing
-- changed). The versions are compared as bytes: no number parsing, and no
-- rounding of Lua's double-precision numbers. Seconds are far below 2^53.
if redis.call('GETRANGE', KEYS[1], 0, 7) ~= ARGV[1] then
  return 0
end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
-- In slices: unpack of a long list would overflow Lua's stack.
for first = 6, #ARGV, 1000 do
  redis.call('HSET', KEYS[2], unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
if ARGV[5] ~= '' then
  -- A record's write time is the 4 bytes after its format byte, big endian.
  local horizon = tonumber(ARGV[5])
  local all = redis.call('HGETALL', KEYS[2])
  local expired = {}
  for i = 1, #all, 2 do
    local a, b, c, d = string.byte(all[i + 1], 2, 5)
    if d and ((a * 256 + b) * 256 + c) * 256 + d < horizon then
      expired[#expired + 1] = all[i]
    end
  end
  for first = 1, #expired, 1000 do
    redis.call('HDEL', KEYS[2], unpack(expired, first, math.min(first + 999, #expired)))
  end
end
if ARGV[4] ~= '' then
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return 1
