"""The server-side scripts: each queue operation is one atomic Lua script.

Keys of queue NAME (all share the hash tag ``{NAME}``, so one cluster slot)::

    unimq:{NAME}:meta     hash: gen (incarnation), limits, mode/uid/gid, bytes, seq, times
    unimq:{NAME}:all      zset of every message: score 32767 - priority, member
                          "<seq, 16 digits>:<mtype>:<priority>" (equal scores sort by
                          member, so FIFO within a priority)
    unimq:{NAME}:t:<T>    zset of the messages of type T, same scores and members
    unimq:{NAME}:types    zset of the non-empty types (score = type), for "lowest <= n"
    unimq:{NAME}:data     hash member -> payload
    unimq:{NAME}:rw/:sw   zsets of blocked receivers / senders (waiter ids)
    unimq:{NAME}:w:<id>   a waiter's wake-up list; it blocks in BLPOP on it

A failing attempt that may wait registers its waiter id in the same script
(and clears its stale wake-ups), so no wake-up can be lost between the check
and the wait. Every send wakes all registered receivers, every receive all
registered senders, and removal both; the woken retry their script.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "CREATE",
    "RECEIVE",
    "RECEIVE_MANY",
    "REMOVE",
    "SEND",
    "SEND_MANY",
    "STAT",
    "Script",
]


class Script:
    """A Lua script, called by SHA1 and sent in full after NOSCRIPT."""

    __slots__ = ("body", "name", "sha")

    def __init__(self, name: str, body: str) -> None:
        self.name = name
        self.body = (_COMMON + body).encode()
        self.sha = hashlib.sha1(self.body).hexdigest()


_COMMON = """
local function wake(set, prefix)
  local ids = redis.call('ZRANGE', set, 0, -1)
  if #ids > 0 then
    redis.call('DEL', set)
    for i = 1, #ids do
      local list = prefix .. ':w:' .. ids[i]
      redis.call('RPUSH', list, 1)
      redis.call('PEXPIRE', list, 60000)
    end
  end
end
local function now()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end
local function register(set, prefix, id)
  if id ~= '' then
    redis.call('ZADD', set, 0, id)
    redis.call('DEL', prefix .. ':w:' .. id)
  end
end
"""

# Only the meta key is declared (it routes the call to the queue's slot); the
# others are derived from the prefix and share its hash tag, so the same slot.
# KEYS: meta ; ARGV: prefix gen data mtype priority pid waiter
SEND = Script(
    "send",
    """
local meta, P = KEYS[1], ARGV[1]
local m = redis.call('HMGET', meta, 'gen', 'max_messages', 'max_bytes', 'bytes', 'seq')
if m[1] ~= ARGV[2] then return -1 end
local size = string.len(ARGV[3])
local nbytes = tonumber(m[4])
local all = P .. ':all'
if redis.call('ZCARD', all) >= tonumber(m[2]) or nbytes + size > tonumber(m[3]) then
  register(P .. ':sw', P, ARGV[7])
  return 0
end
local seq = tonumber(m[5]) + 1
local member = string.format('%016d', seq) .. ':' .. ARGV[4] .. ':' .. ARGV[5]
local score = 32767 - tonumber(ARGV[5])
redis.call('ZADD', all, score, member)
redis.call('ZADD', P .. ':t:' .. ARGV[4], score, member)
redis.call('ZADD', P .. ':types', ARGV[4], ARGV[4])
redis.call('HSET', P .. ':data', member, ARGV[3])
redis.call('HSET', meta, 'seq', seq, 'bytes', nbytes + size, 'stime', now(), 'spid', ARGV[6])
wake(P .. ':rw', P)
return 1
""",
)

# KEYS: meta ; ARGV: prefix gen sel pid waiter
RECEIVE = Script(
    "receive",
    """
local meta, P = KEYS[1], ARGV[1]
local m = redis.call('HMGET', meta, 'gen', 'bytes')
if m[1] ~= ARGV[2] then return -1 end
local sel = tonumber(ARGV[3])
local all = P .. ':all'
local found
if sel == 0 then
  found = redis.call('ZRANGE', all, 0, 0)
elseif sel > 0 then
  found = redis.call('ZRANGE', P .. ':t:' .. sel, 0, 0)
else
  local t = redis.call('ZRANGEBYSCORE', P .. ':types', '-inf', -sel, 'LIMIT', 0, 1)
  if t[1] then found = redis.call('ZRANGE', P .. ':t:' .. t[1], 0, 0) else found = {} end
end
local member = found[1]
if not member then
  register(P .. ':rw', P, ARGV[5])
  return false
end
local _, _, mt, pr = string.find(member, '^%d+:(%d+):(%d+)$')
local dkey = P .. ':data'
local data = redis.call('HGET', dkey, member)
redis.call('HDEL', dkey, member)
redis.call('ZREM', all, member)
local tkey = P .. ':t:' .. mt
redis.call('ZREM', tkey, member)
if redis.call('EXISTS', tkey) == 0 then redis.call('ZREM', P .. ':types', mt) end
redis.call('HSET', meta, 'bytes', tonumber(m[2]) - string.len(data), 'rtime', now(),
  'rpid', ARGV[4])
wake(P .. ':sw', P)
return {data, tonumber(mt), tonumber(pr)}
""",
)

# One batch: as many of the messages as fit, in order; returns how many went.
# KEYS: meta ; ARGV: prefix gen pid, then data mtype priority per message
SEND_MANY = Script(
    "send_many",
    """
local meta, P = KEYS[1], ARGV[1]
local m = redis.call('HMGET', meta, 'gen', 'max_messages', 'max_bytes', 'bytes', 'seq')
if m[1] ~= ARGV[2] then return -1 end
local all = P .. ':all'
local count, maxm = redis.call('ZCARD', all), tonumber(m[2])
local nbytes, maxb, seq = tonumber(m[4]), tonumber(m[3]), tonumber(m[5])
local zall, hdata, bytype, order = {}, {}, {}, {}
local sent = 0
for i = 4, #ARGV, 3 do
  local data = ARGV[i]
  local size = string.len(data)
  if count >= maxm or nbytes + size > maxb then break end
  local mt, pr = ARGV[i + 1], ARGV[i + 2]
  seq = seq + 1
  local member = string.format('%016d', seq) .. ':' .. mt .. ':' .. pr
  local score = 32767 - tonumber(pr)
  zall[#zall + 1] = score
  zall[#zall + 1] = member
  hdata[#hdata + 1] = member
  hdata[#hdata + 1] = data
  local t = bytype[mt]
  if not t then
    t = {}
    bytype[mt] = t
    order[#order + 1] = mt
  end
  t[#t + 1] = score
  t[#t + 1] = member
  count = count + 1
  nbytes = nbytes + size
  sent = sent + 1
end
if sent == 0 then return 0 end
redis.call('ZADD', all, unpack(zall))
local types = P .. ':types'
for i = 1, #order do
  local mt = order[i]
  redis.call('ZADD', P .. ':t:' .. mt, unpack(bytype[mt]))
  redis.call('ZADD', types, mt, mt)
end
redis.call('HSET', P .. ':data', unpack(hdata))
redis.call('HSET', meta, 'seq', seq, 'bytes', nbytes, 'stime', now(), 'spid', ARGV[3])
wake(P .. ':rw', P)
return sent
""",
)

# Up to ``limit`` messages in the order single receives would take them.
# Reply: {mtypes, priorities, data...}, where mtypes (priorities) is one integer
# when every message has it, else a list; {} when nothing matched; -1 if removed.
# KEYS: meta ; ARGV: prefix gen sel pid limit
RECEIVE_MANY = Script(
    "receive_many",
    """
local meta, P = KEYS[1], ARGV[1]
local m = redis.call('HMGET', meta, 'gen', 'bytes')
if m[1] ~= ARGV[2] then return -1 end
local sel, limit = tonumber(ARGV[3]), tonumber(ARGV[5])
local all, types = P .. ':all', P .. ':types'
local members = {}
local function pop(key, k)
  local got = redis.call('ZRANGE', key, 0, k - 1)
  if #got > 0 then redis.call('ZREMRANGEBYRANK', key, 0, #got - 1) end
  return got
end
local function drop_type(mt)
  if redis.call('EXISTS', P .. ':t:' .. mt) == 0 then redis.call('ZREM', types, mt) end
end
if sel == 0 then
  members = pop(all, limit)
  local counts, order = {}, {}
  for i = 1, #members do
    local _, _, mt = string.find(members[i], '^%d+:(%d+):')
    if not counts[mt] then
      counts[mt] = 0
      order[#order + 1] = mt
    end
    counts[mt] = counts[mt] + 1
  end
  -- The first k of ':all' with type T are the first of ':t:T' (same order).
  for i = 1, #order do
    local mt = order[i]
    redis.call('ZREMRANGEBYRANK', P .. ':t:' .. mt, 0, counts[mt] - 1)
    drop_type(mt)
  end
else
  local ts
  if sel > 0 then ts = {tostring(sel)} else
    ts = redis.call('ZRANGEBYSCORE', types, '-inf', -sel)
  end
  for i = 1, #ts do
    local left = limit - #members
    if left <= 0 then break end
    local got = pop(P .. ':t:' .. ts[i], left)
    if #got > 0 then
      redis.call('ZREM', all, unpack(got))
      drop_type(ts[i])
      for j = 1, #got do members[#members + 1] = got[j] end
    end
  end
end
if #members == 0 then return {} end
local dkey = P .. ':data'
local datas = redis.call('HMGET', dkey, unpack(members))
redis.call('HDEL', dkey, unpack(members))
local out = {false, false}
local mts, prs = {}, {}
local same_mt, same_pr = true, true
local size = 0
for i = 1, #members do
  local _, _, mt, pr = string.find(members[i], '^%d+:(%d+):(%d+)$')
  mts[i] = tonumber(mt)
  prs[i] = tonumber(pr)
  if mts[i] ~= mts[1] then same_mt = false end
  if prs[i] ~= prs[1] then same_pr = false end
  size = size + string.len(datas[i])
  out[i + 2] = datas[i]
end
if same_mt then out[1] = mts[1] else out[1] = mts end
if same_pr then out[2] = prs[1] else out[2] = prs end
redis.call('HSET', meta, 'bytes', tonumber(m[2]) - size, 'rtime', now(), 'rpid', ARGV[4])
wake(P .. ':sw', P)
return out
""",
)

# KEYS: meta ; ARGV: gen max_messages max_message_size max_bytes mode uid gid pid
CREATE = Script(
    "create",
    """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'max_messages', ARGV[2],
  'max_message_size', ARGV[3], 'max_bytes', ARGV[4], 'mode', ARGV[5], 'uid', ARGV[6],
  'gid', ARGV[7], 'bytes', 0, 'seq', 0, 'ctime', now(), 'cpid', ARGV[8], 'layout', 1)
return 1
""",
)

# KEYS: meta all types data rw sw ; ARGV: prefix gen ('' = whatever incarnation)
REMOVE = Script(
    "remove",
    """
local g = redis.call('HGET', KEYS[1], 'gen')
if not g or (ARGV[2] ~= '' and g ~= ARGV[2]) then return 0 end
local types = redis.call('ZRANGE', KEYS[3], 0, -1)
for i = 1, #types do redis.call('UNLINK', ARGV[1] .. ':t:' .. types[i]) end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
wake(KEYS[5], ARGV[1])
wake(KEYS[6], ARGV[1])
return 1
""",
)

# KEYS: meta all ; ARGV: gen
STAT = Script(
    "stat",
    """
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] then return -1 end
return {redis.call('ZCARD', KEYS[2]), redis.call('HGETALL', KEYS[1])}
""",
)
