--[[
  Included by commit-9.lua and delete-checkpoint-4.lua (not a script on its own).

  dropCheckpoint(base, refsKey, checkpointsKey, savepointsKey, id) removes checkpoint `id` of the
  job whose keys start with `base` ("<prefix>:{<job>}:"): its metadata, chunk set and info, its
  entry in the checkpoint and savepoint sorted sets, and every chunk whose reference count in
  `refsKey` (chunk id -> number of stored checkpoints that refer to it) drops to zero.
  Touches 3 + 2 * (chunks of that checkpoint) keys, all inside the job's hash tag.
]]
local function dropCheckpoint(base, refsKey, checkpointsKey, savepointsKey, id)
  local cpBase = base .. 'cp:' .. id
  local chunks = redis.call('SMEMBERS', cpBase .. ':chunks')
  for _, chunkId in ipairs(chunks) do
    local left = redis.call('HINCRBY', refsKey, chunkId, -1)
    if left <= 0 then
      redis.call('HDEL', refsKey, chunkId)
      redis.call('DEL', base .. 'chunk:' .. chunkId)
    end
  end
  redis.call('DEL', cpBase .. ':meta', cpBase .. ':chunks', cpBase .. ':info')
  redis.call('ZREM', checkpointsKey, id)
  redis.call('ZREM', savepointsKey, id)
end
