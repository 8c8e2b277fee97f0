--[[
  Gives a job's leader lease up, if the token holds it (compare and delete).

    Input:
      KEYS[1] lease key               <prefix>:{<job>}:leader

      ARGV[1] the holder's token

    Output:
      1 released; 0 the token did not hold it
]]
local record = redis.call('GET', KEYS[1])
if record and cjson.decode(record).token == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
