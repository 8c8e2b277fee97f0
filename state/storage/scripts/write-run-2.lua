--[[
  Writes a job's run record (no expiry), if the token holds the job's leader lease: a job manager
  that lost its lease cannot say anything of the run any more.

    Input:
      KEYS[1] lease key               <prefix>:{<job>}:leader
      KEYS[2] run key                 <prefix>:{<job>}:run

      ARGV[1] the holder's token
      ARGV[2] the run record (JSON)

    Output:
      1 written; 0 the token does not hold the lease
]]
local record = redis.call('GET', KEYS[1])
if record and cjson.decode(record).token == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 0
