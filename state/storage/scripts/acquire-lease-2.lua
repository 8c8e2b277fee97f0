--[[
  Takes a job's leader lease if nobody holds it (SET NX PX: an expired lease is gone), and counts
  the acquisition. The lease holds the leader's record (JSON with its token); only a holder that
  knows the token renews (renew-lease-1.lua) or releases (release-lease-1.lua) it.

    Input:
      KEYS[1] lease key               <prefix>:{<job>}:leader
      KEYS[2] generation key          <prefix>:{<job>}:leader-generation

      ARGV[1] the leader's record (JSON)
      ARGV[2] lease duration, ms

    Output:
      { 1, <generation> }                      taken; the generation counts acquisitions
      { 0, <holder's record>, <remaining ms> } held by another
]]
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return { 1, redis.call('INCR', KEYS[2]) }
end
return { 0, redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]) }
