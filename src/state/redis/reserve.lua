-- Reserve budget points for one event's award of one budgeted rule (see
-- docs/state.md, "Promotion budgets").
--
-- KEYS[1]  the rule's budget hash: field `spent`
-- KEYS[2]  the hash of grants of the rule: field per event, value the grant
--          (same hash tag as KEYS[1]: one slot, one script)
-- ARGV[1]  the event's grant id
-- ARGV[2]  points the evaluation awarded
-- ARGV[3]  the rule's budget_points
-- ARGV[4]  how long to keep the grants, in milliseconds
--
-- Returns the grant: at most what is left of the budget. An event that asks
-- again gets its first grant back and charges nothing, so a replay after a
-- crash is charged once.
local granted = redis.call('HGET', KEYS[2], ARGV[1])
if granted then
  return tonumber(granted)
end
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local left = tonumber(ARGV[3]) - spent
if left < 0 then
  left = 0
end
local grant = tonumber(ARGV[2])
if grant > left then
  grant = left
end
if grant < 0 then
  grant = 0
end
redis.call('HINCRBY', KEYS[1], 'spent', grant)
redis.call('HSET', KEYS[2], ARGV[1], grant)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return grant
