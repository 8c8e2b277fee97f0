--[[
  Writes a chunk with an expiry, so a chunk that no commit ever refers to (an abandoned
  checkpoint) expires on its own; the commit (commit-9.lua) persists the chunks it refers to.
  A persisted chunk belongs to a committed checkpoint and is immutable: writing the same bytes
  again is a no-op, other bytes are refused.

    Input:
      KEYS[1] chunk key               <prefix>:{<job>}:chunk:<chunk id>

      ARGV[1] the stored chunk (header + payload)
      ARGV[2] expiry, ms

    Output:
      1 written; 0 already stored by a committed checkpoint, with the same bytes

    Errors:
      "IMMUTABLE"   a committed checkpoint refers to this chunk and the bytes differ
]]
if redis.call('PTTL', KEYS[1]) == -1 then
  if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
  return redis.error_reply('IMMUTABLE')
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
