--[[
  Resolves a commit whose reply was lost (timeout, connection closed): tells whether the commit
  with this token happened and, when it did not, makes sure it never will: the token is marked
  aborted, so a commit script still on its way is refused with "ABORTED" (commit-9.lua). The
  client calls this on the same connection as the commit when it can, so Redis runs it after.

    Input:
      KEYS[1] info key                <base>cp:<id>:info  (holds the token of the commit that wrote it)
      KEYS[2] aborted marker key      <base>aborted:<token>
      KEYS[3] epoch key               <base>epoch

      ARGV[1] commit token
      ARGV[2] expiry of the aborted marker, ms

    Output:
      { 1, <current epoch> }   the commit happened
      { 0, <current epoch> }   it did not, and now never will
]]
local current = tonumber(redis.call('GET', KEYS[3]) or '0')
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  return { 1, current }
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return { 0, current }
