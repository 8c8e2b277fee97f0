--[[
  Deletes one checkpoint or savepoint of a job, with the chunks no other stored checkpoint refers
  to, and moves `latest` back to the newest checkpoint or savepoint left (or removes it).

    Input:
      KEYS[1] latest key              <base>latest
      KEYS[2] checkpoints key         <base>checkpoints
      KEYS[3] savepoints key          <base>savepoints
      KEYS[4] refs key                <base>refs

      ARGV[1] base                    "<prefix>:{<job>}:"
      ARGV[2] checkpoint id (decimal)

    Output:
      1 deleted; 0 no such checkpoint
]]
--- @include "drop-checkpoint"

if not redis.call('ZSCORE', KEYS[2], ARGV[2]) and not redis.call('ZSCORE', KEYS[3], ARGV[2]) then
  return 0
end
dropCheckpoint(ARGV[1], KEYS[4], KEYS[2], KEYS[3], ARGV[2])

local newest = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local newestSavepoint = redis.call('ZREVRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if newestSavepoint[1] and (not newest[1] or tonumber(newestSavepoint[2]) > tonumber(newest[2])) then
  newest = newestSavepoint
end
if newest[1] then
  redis.call('SET', KEYS[1], newest[1])
else
  redis.call('DEL', KEYS[1])
end
return 1
