--[[
  Extends a job's leader lease, if the token still holds it (compare and renew).

    Input:
      KEYS[1] lease key               <prefix>:{<job>}:leader

      ARGV[1] the holder's token
      ARGV[2] lease duration, ms

    Output:
      1 renewed; 0 the lease expired or another job manager holds it
]]
local record = redis.call('GET', KEYS[1])
if record and cjson.decode(record).token == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
