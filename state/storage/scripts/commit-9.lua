--[[
  Commits a checkpoint of one job, atomically: the fenced, checked commit point of the Redis
  checkpoint storage (state/storage/redis.ts).

  Checks, before writing anything: the epoch is the job's current one (fencing), the commit was not
  already declared failed by its client (aborted marker), the checkpoint is newer than the latest,
  and every chunk it refers to is stored. Then writes the metadata, chunk set and info, persists
  the chunks (they were written with an expiry) and counts the references to them, moves `latest`,
  and applies retention: every non-savepoint checkpoint but the newest `retain` is removed, with
  the chunks no stored checkpoint or savepoint refers to any more.

  Every key is inside the job's hash tag "{<job>}", so the script runs on one cluster slot.

    Input:
      KEYS[1] epoch key               <base>epoch         the current epoch (absent = 0)
      KEYS[2] latest key              <base>latest        id of the latest committed checkpoint
      KEYS[3] checkpoints key         <base>checkpoints   sorted set of checkpoint ids (score = id)
      KEYS[4] savepoints key          <base>savepoints    sorted set of savepoint ids (score = id)
      KEYS[5] refs key                <base>refs          hash: chunk id -> stored checkpoints referring to it
      KEYS[6] metadata key            <base>cp:<id>:meta
      KEYS[7] chunk set key           <base>cp:<id>:chunks
      KEYS[8] info key                <base>cp:<id>:info  hash: timestamp, sizeBytes, chunkCount, savepoint, token, epoch
      KEYS[9] aborted marker key      <base>aborted:<token>

      ARGV[1] base                    "<prefix>:{<job>}:", to name chunk keys and older checkpoints' keys
      ARGV[2] epoch of the committer
      ARGV[3] checkpoint id (decimal)
      ARGV[4] metadata (bytes, stored as given)
      ARGV[5] commit time, ms since the epoch
      ARGV[6] "1" for a savepoint, else "0"
      ARGV[7] retain (>= 1): non-savepoint checkpoints to keep
      ARGV[8] commit token (unique per commit call; lets the client resolve a lost reply)
      ARGV[9] bytes of the chunk header (subtracted from each chunk's size)
      ARGV[10..] the ids of the chunks the checkpoint refers to, distinct

    Output:
      the ids of the checkpoints that retention removed (possibly empty)

    Errors (nothing was written):
      "FENCED <current epoch>"     the epoch is older than the current one
      "BADEPOCH <current epoch>"   the epoch is newer than any ever issued
      "ABORTED"                    this commit's token was declared failed (resolve-commit-3.lua)
      "STALE <latest>"             the checkpoint is not newer than the latest
      "MISSINGCHUNK <chunk id>"    a referenced chunk is not stored (never written, or expired)
]]
--- @include "drop-checkpoint"

local base = ARGV[1]
local epoch = tonumber(ARGV[2])
local id = tonumber(ARGV[3])

local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if epoch < current then return redis.error_reply('FENCED ' .. current) end
if epoch > current then return redis.error_reply('BADEPOCH ' .. current) end
if redis.call('EXISTS', KEYS[9]) == 1 then return redis.error_reply('ABORTED') end
local latest = redis.call('GET', KEYS[2])
if latest and not string.match(latest, '^%d+$') then
  -- A damaged pointer (not an id): the newest stored checkpoint or savepoint stands for it, as
  -- latest() reads it; this commit sets it again.
  latest = nil
  for _, key in ipairs({KEYS[3], KEYS[4]}) do
    local newest = redis.call('ZREVRANGE', key, 0, 0)[1]
    if newest and (latest == nil or tonumber(newest) > tonumber(latest)) then latest = newest end
  end
end
if latest and id <= tonumber(latest) then return redis.error_reply('STALE ' .. latest) end

local headerBytes = tonumber(ARGV[9])
local size = string.len(ARGV[4])
for i = 10, #ARGV do
  local len = redis.call('STRLEN', base .. 'chunk:' .. ARGV[i])
  if len == 0 then return redis.error_reply('MISSINGCHUNK ' .. ARGV[i]) end
  size = size + len - headerBytes
end

-- Leftovers of this id can only come from a script that failed half-way (out of memory).
redis.call('DEL', KEYS[6], KEYS[7], KEYS[8])
redis.call('SET', KEYS[6], ARGV[4])
local first = 10
while first <= #ARGV do
  local last = math.min(first + 999, #ARGV)
  redis.call('SADD', KEYS[7], unpack(ARGV, first, last))
  first = last + 1
end
for i = 10, #ARGV do
  redis.call('PERSIST', base .. 'chunk:' .. ARGV[i])
  redis.call('HINCRBY', KEYS[5], ARGV[i], 1)
end
redis.call('HSET', KEYS[8], 'timestamp', ARGV[5], 'sizeBytes', string.format('%d', size),
  'chunkCount', tostring(#ARGV - 9), 'savepoint', ARGV[6], 'token', ARGV[8], 'epoch', ARGV[2])
if ARGV[6] == '1' then
  redis.call('ZADD', KEYS[4], id, ARGV[3])
else
  redis.call('ZADD', KEYS[3], id, ARGV[3])
end
redis.call('SET', KEYS[2], ARGV[3])

local retain = tonumber(ARGV[7])
local count = redis.call('ZCARD', KEYS[3])
local dropped = {}
if count > retain then
  dropped = redis.call('ZRANGE', KEYS[3], 0, count - retain - 1)
  for _, old in ipairs(dropped) do
    dropCheckpoint(base, KEYS[5], KEYS[3], KEYS[4], old)
  end
end
return dropped
