"""The server-side scripts: each queue operation is one atomic Lua script.

Keys of queue NAME (all share the hash tag ``{NAME}``, so one cluster slot)::

    unimq:{NAME}:meta       hash: gen (incarnation), limits, mode/uid/gid, count, bytes,
                            seq, times, layout; ttl (ms) for a temporary queue;
                            lists (how many lists are non-empty); w:rw / w:sw
                            set while the waiter zset of that name may be non-empty
    unimq:{NAME}:l:<P>:<T>  list of the messages of priority P and type T, oldest
                            first; an entry is "<seq><run><payload>", seq and run
                            16 characters each (decimal, zero-padded, may be
                            negative): run is the list's running byte total
                            before the entry (meta ``c:<P>:<T>`` holds the total
                            after its last entry), so the bytes of entries i..j-1
                            are run(j) - run(i) without reading the payloads
    unimq:{NAME}:h:<P>      zset of the non-empty lists of priority P: member T,
                            score = seq of the list's first message (while it is
                            the queue's only list, it may be lower: see COMMIT)
    unimq:{NAME}:prios      zset of the non-empty priorities (score 32767 - P)
    unimq:{NAME}:tl:<T>     zset of the non-empty priorities of type T (score 32767 - P)
    unimq:{NAME}:types      zset of the non-empty types (score = type), for "lowest <= n"
    unimq:{NAME}:rw/:sw     zsets of blocked receivers / senders (waiter ids)
    unimq:{NAME}:w:<id>     a waiter's wake-up list; it blocks in BLPOP on it

The next message overall is the first of the list ``h:<P>`` ranks first for
the highest priority in ``prios``; the next of type T is the first of list
``l:<P>:<T>`` for the highest P in ``tl:<T>``. A receive takes from the head of
one list (a batch, as long as that list stays first), so the common case is a
list pop. Index entries go when their list empties and come back with the next
send; on a temporary queue (meta ``ttl``) every key a script creates gets the
queue's expiry, which the handle renews while it is open.

A failing attempt that may wait registers its waiter id in the same script
(and clears its stale wake-ups), so no wake-up can be lost between the check
and the wait. Every send wakes all registered receivers, every receive all
registered senders, and removal both; the woken retry their script. Meta
``w:rw`` / ``w:sw`` say a set may hold waiters, so an operation nobody waits
for reads that with its other meta fields and does not look at the set.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "COMMIT",
    "CREATE",
    "LAYOUT",
    "RECEIVE",
    "RECEIVE_MANY",
    "REMOVE",
    "RENEW",
    "RETURN",
    "SEND",
    "SEND_MANY",
    "STAT",
    "Script",
]

#: The key layout these scripts use (meta ``layout``); a queue made with another
#: layout is refused on open rather than misread.
LAYOUT = 4


class Script:
    """A Lua script, called by SHA1 and sent in full after NOSCRIPT."""

    __slots__ = ("body", "name", "sha")

    def __init__(self, name: str, body: str) -> None:
        self.name = name
        # Only the helpers the body calls, and those they call (a helper calls
        # only helpers defined before it): each one defined costs the script a
        # closure on every run.
        text, used = body, []
        for fn, code in reversed(_HELPERS.items()):
            if f"{fn}(" in text:
                used.append(code)
                text += code
        self.body = ("".join(reversed(used)) + body).encode()
        self.sha = hashlib.sha1(self.body).hexdigest()


# The Lua helpers by name; a script gets those its body calls.
_HELPERS = {
    "wake": """
-- Wake the waiters of set ``w`` ('rw' or 'sw'); callers skip it when meta's
-- ``w:<w>`` is not set (nobody registered since the last wake).
local function wake(P, w)
  local set = P .. ':' .. w
  local ids = redis.call('ZRANGE', set, 0, -1)
  redis.call('HDEL', P .. ':meta', 'w:' .. w)
  if #ids > 0 then
    redis.call('DEL', set)
    for i = 1, #ids do
      local list = P .. ':w:' .. ids[i]
      redis.call('RPUSH', list, 1)
      redis.call('PEXPIRE', list, 60000)
    end
  end
end
""",
    "now": """
local function now()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end
""",
    "register": """
local function register(P, w, id, ttl)
  if id ~= '' then
    local set = P .. ':' .. w
    redis.call('ZADD', set, 0, id)
    redis.call('HSET', P .. ':meta', 'w:' .. w, 1)
    if ttl then redis.call('PEXPIRE', set, ttl) end
    redis.call('DEL', P .. ':w:' .. id)
  end
end
""",
    "exact": """
-- The score of the queue's only list may lag behind its head (COMMIT leaves it):
-- set it from the head before another list is indexed next to it.
local function exact(P)
  local p = redis.call('ZRANGE', P .. ':prios', 0, 0)[1]
  if not p then return end
  local h = P .. ':h:' .. p
  local t = redis.call('ZRANGE', h, 0, 0)[1]
  local first = t and redis.call('LINDEX', P .. ':l:' .. p .. ':' .. t, 0)
  if first then redis.call('ZADD', h, string.sub(first, 1, 16), t) end
end
""",
    "index": """
-- List (P, T) just became non-empty with message ``seq`` first: index it.
-- ``lists``: how many lists were non-empty; returns how many are now.
local function index(P, pr, mt, seq, ttl, lists)
  if lists == 1 then exact(P) end
  local rank = 32767 - tonumber(pr)
  local h, tl = P .. ':h:' .. pr, P .. ':tl:' .. mt
  redis.call('ZADD', h, seq, mt)
  redis.call('ZADD', P .. ':prios', rank, pr)
  redis.call('ZADD', tl, rank, pr)
  redis.call('ZADD', P .. ':types', mt, mt)
  if ttl then
    for _, k in ipairs({P .. ':l:' .. pr .. ':' .. mt, h, P .. ':prios', tl, P .. ':types'}) do
      redis.call('PEXPIRE', k, ttl)
    end
  end
  return lists + 1
end
""",
    "popped": """
-- Messages were taken from the head of list (P, T): re-rank or unindex it
-- (``empty``: the caller knows the list is now empty). ``lists``: how many
-- lists were non-empty; returns how many are now.
local function popped(P, pr, mt, empty, lists)
  local first = not empty and redis.call('LINDEX', P .. ':l:' .. pr .. ':' .. mt, 0)
  local h = P .. ':h:' .. pr
  if first then
    redis.call('ZADD', h, string.sub(first, 1, 16), mt)
    return lists
  end
  redis.call('ZREM', h, mt)
  redis.call('HDEL', P .. ':meta', 'c:' .. pr .. ':' .. mt)
  if redis.call('EXISTS', h) == 0 then redis.call('ZREM', P .. ':prios', pr) end
  local tl = P .. ':tl:' .. mt
  redis.call('ZREM', tl, pr)
  if redis.call('EXISTS', tl) == 0 then redis.call('ZREM', P .. ':types', mt) end
  return lists - 1
end
""",
    "pick": """
-- The list holding the next message for selection ``sel``: priority, type and,
-- for sel == 0, the first seq of the next list of that priority (nil if none).
local function pick(P, sel)
  if sel == 0 then
    local p = redis.call('ZRANGE', P .. ':prios', 0, 0)[1]
    if not p then return nil end
    local h = redis.call('ZRANGE', P .. ':h:' .. p, 0, 1, 'WITHSCORES')
    return p, h[1], h[4]
  end
  local t
  if sel > 0 then
    t = tostring(sel)
  else
    t = redis.call('ZRANGEBYSCORE', P .. ':types', '-inf', -sel, 'LIMIT', 0, 1)[1]
    if not t then return nil end
  end
  local p = redis.call('ZRANGE', P .. ':tl:' .. t, 0, 0)[1]
  if not p then return nil end
  return p, t, nil
end
""",
    "ttl_of": """
local function ttl_of(v)
  if v then return tonumber(v) end
  return nil
end
""",
}

# Only the meta key is declared (it routes the call to the queue's slot); the
# others are derived from the prefix and share its hash tag, so the same slot.
# KEYS: meta ; ARGV: prefix gen data mtype priority pid waiter
SEND = Script(
    "send",
    """
local meta, P = KEYS[1], ARGV[1]
local mt, pr = ARGV[4], ARGV[5]
local c = 'c:' .. pr .. ':' .. mt
local m = redis.call('HMGET', meta, 'gen', 'max_messages', 'max_bytes', 'bytes', 'seq',
  'count', 'ttl', c, 'lists', 'w:rw')
if m[1] ~= ARGV[2] then return -1 end
local size = string.len(ARGV[3])
local nbytes, count = tonumber(m[4]), tonumber(m[6])
local ttl = ttl_of(m[7])
if count >= tonumber(m[2]) or nbytes + size > tonumber(m[3]) then
  register(P, 'sw', ARGV[7], ttl)
  return 0
end
local seq = tonumber(m[5]) + 1
local head = string.format('%016d', seq)
local run = tonumber(m[8] or '0')
local entry = head .. string.format('%016d', run) .. ARGV[3]
local lists = tonumber(m[9])
if redis.call('RPUSH', P .. ':l:' .. pr .. ':' .. mt, entry) == 1 then
  lists = index(P, pr, mt, head, ttl, lists)
end
redis.call('HSET', meta, 'seq', seq, 'count', count + 1, 'bytes', nbytes + size,
  'stime', now(), 'spid', ARGV[6], c, run + size, 'lists', lists)
if m[10] then wake(P, 'rw') end
return 1
""",
)

# One batch: as many of the messages as fit, in order; returns how many went.
# KEYS: meta ; ARGV: prefix gen pid, then data mtype priority per message
SEND_MANY = Script(
    "send_many",
    """
local meta, P = KEYS[1], ARGV[1]
local m = redis.call('HMGET', meta, 'gen', 'max_messages', 'max_bytes', 'bytes', 'seq',
  'count', 'ttl', 'lists', 'w:rw')
if m[1] ~= ARGV[2] then return -1 end
local lists = tonumber(m[8])
local maxm, maxb = tonumber(m[2]), tonumber(m[3])
local nbytes, seq, count = tonumber(m[4]), tonumber(m[5]), tonumber(m[6])
local ttl = ttl_of(m[7])
local sent = 0
-- run: the entries for list (rpr, rmt); totals: each list's running byte total
local run, rpr, rmt, c, total = {}, nil, nil, nil, 0
local totals = {}
local function flush()
  if #run == 0 then return end
  local n = redis.call('RPUSH', P .. ':l:' .. rpr .. ':' .. rmt, unpack(run))
  if n == #run then lists = index(P, rpr, rmt, string.sub(run[1], 1, 16), ttl, lists) end
  totals[c] = total
  run = {}
end
for i = 4, #ARGV, 3 do
  local data = ARGV[i]
  local size = string.len(data)
  if count >= maxm or nbytes + size > maxb then break end
  local mt, pr = ARGV[i + 1], ARGV[i + 2]
  if mt ~= rmt or pr ~= rpr then
    flush()
    rmt, rpr = mt, pr
    c = 'c:' .. pr .. ':' .. mt
    total = totals[c] or tonumber(redis.call('HGET', meta, c) or '0')
  end
  seq = seq + 1
  run[#run + 1] = string.format('%016d', seq) .. string.format('%016d', total) .. data
  total = total + size
  count = count + 1
  nbytes = nbytes + size
  sent = sent + 1
end
if sent == 0 then return 0 end
flush()
local fields = {'seq', seq, 'count', count, 'bytes', nbytes, 'stime', now(), 'spid', ARGV[3],
  'lists', lists}
for k, v in pairs(totals) do
  fields[#fields + 1] = k
  fields[#fields + 1] = v
end
redis.call('HSET', meta, unpack(fields))
if m[9] then wake(P, 'rw') end
return sent
""",
)

# KEYS: meta ; ARGV: prefix gen sel pid waiter
RECEIVE = Script(
    "receive",
    """
local meta, P = KEYS[1], ARGV[1]
local m = redis.call('HMGET', meta, 'gen', 'bytes', 'count', 'ttl', 'lists', 'w:sw')
if m[1] ~= ARGV[2] then return -1 end
local pr, mt = pick(P, tonumber(ARGV[3]))
if not pr then
  register(P, 'rw', ARGV[5], ttl_of(m[4]))
  return false
end
local entry = redis.call('LPOP', P .. ':l:' .. pr .. ':' .. mt)
local lists = popped(P, pr, mt, false, tonumber(m[5]))
local data = string.sub(entry, 33)
redis.call('HSET', meta, 'count', tonumber(m[3]) - 1, 'bytes',
  tonumber(m[2]) - string.len(data), 'rtime', now(), 'rpid', ARGV[4], 'lists', lists)
if m[6] then wake(P, 'sw') end
return {data, tonumber(mt), tonumber(pr)}
""",
)

# Up to ``limit`` messages in the order single receives would take them, and
# no more payload bytes than ``budget`` unless the first message alone is larger.
# Reply: {runs, entries, cut} or {} when nothing matched, -1 if removed:
# ``entries`` are the entries taken ("<seq><run><payload>"), ``runs``
# flat (mtype, priority, count) triples for consecutive entries sharing a type
# and a priority, and ``cut`` 1 when the budget (not the queue) ended the batch.
# When the whole queue fits in the budget (``whole``), no entry needs its own
# check for the budget: a list that no other list of its priority interleaves
# (no ``bound``) is taken by one LPOP with a count, and the bytes taken are
# counted at once (one concatenation, in C), not entry by entry. Otherwise the
# entries are read in steps (LRANGE) and the list trimmed after; a list is in
# seq order, so where the next list of the priority starts (``bound``) is found
# by a binary search, not by looking at every entry.
# KEYS: meta ; ARGV: prefix gen sel pid limit budget
RECEIVE_MANY = Script(
    "receive_many",
    """
local meta, P = KEYS[1], ARGV[1]
local m = redis.call('HMGET', meta, 'gen', 'bytes', 'count', 'lists', 'w:sw')
if m[1] ~= ARGV[2] then return -1 end
local lists = tonumber(m[4])
local sel, left, budget = tonumber(ARGV[3]), tonumber(ARGV[5]), tonumber(ARGV[6])
local queued = tonumber(m[2])
local whole = queued <= budget
local runs, out = {}, {}
local total, size, cut = 0, 0, 0
while left > 0 and cut == 0 do
  local pr, mt, bound = pick(P, sel)
  if not pr then break end
  local list = P .. ':l:' .. pr .. ':' .. mt
  local taken, k, empty
  if whole and not bound then
    taken = redis.call('LPOP', list, left)
    if not taken then break end
    k = #taken
    size = size + #table.concat(taken) - 32 * k
    empty = k < left
  else
    if bound then bound = tonumber(bound) end
    taken, k = {}, 0
    local start, stop = 0, false
    while not stop and k < left do
      local step = math.min(left - k, 128)
      local part = redis.call('LRANGE', list, start, start + step - 1)
      local n = #part
      if n < step then stop = true end
      if bound and n > 0 and tonumber(string.sub(part[n], 1, 16)) >= bound then
        local lo, hi = 0, n
        while lo < hi do
          local mid = math.floor((lo + hi) / 2)
          if tonumber(string.sub(part[mid + 1], 1, 16)) >= bound then hi = mid else lo = mid + 1 end
        end
        n = lo
        stop = true
      end
      if whole then
        if n > 0 then size = size + #table.concat(part, '', 1, n) - 32 * n end
        for i = 1, n do taken[k + i] = part[i] end
        k = k + n
      else
        for i = 1, n do
          local e = part[i]
          local len = string.len(e) - 32
          if total + k > 0 and size + len > budget then
            cut = 1
            stop = true
            break
          end
          k = k + 1
          taken[k] = e
          size = size + len
        end
      end
      start = start + n
    end
    if k == 0 then break end
    redis.call('LTRIM', list, k, -1)
  end
  if total == 0 then
    out = taken
  else
    for i = 1, k do out[total + i] = taken[i] end
  end
  total = total + k
  runs[#runs + 1] = tonumber(mt)
  runs[#runs + 1] = tonumber(pr)
  runs[#runs + 1] = k
  lists = popped(P, pr, mt, empty, lists)
  left = left - k
end
if total == 0 then return {} end
redis.call('HSET', meta, 'count', tonumber(m[3]) - total, 'bytes', queued - size,
  'rtime', now(), 'rpid', ARGV[4], 'lists', lists)
if m[5] then wake(P, 'sw') end
return {runs, out, cut}
""",
)

# The second half of a batch receive that does not pass the messages through
# Lua (each one costs the script a conversion): the client sends
#   MULTI; LRANGE <list> 0 <limit-1>; EVALSHA COMMIT ...; EXEC
# guessing <list> (pr, mt) from its previous batch. Inside MULTI nothing runs
# in between, so COMMIT sees the list LRANGE read. It checks that the list is
# the one RECEIVE_MANY would take from first for selection ``sel``, and takes
# the first k of the entries LRANGE returned: at most ``limit``, those before
# ``bound`` (where the next list of the priority starts) and, unless the whole
# queue fits, no more bytes than ``budget`` (at least one entry). Entry bytes
# come from the running totals in the entries' headers (a few LINDEX, binary
# searches), never from the payloads.
# When <list> is the queue's only non-empty list (meta ``lists`` is 1 and its
# ``c:`` total exists), it is first for any selection its type matches, nothing
# interleaves it and its length is the queue's count: no index is read, and the
# one LINDEX is of the last entry taken. Its score in ``h:<P>`` is then left as
# it was (lower than its new head: alone, nothing ranks it), and ``exact`` sets
# it when a second list is indexed.
# Reply: {k, more, seq}: k >= 1 entries taken; more 0 if the selection has no
# more messages, 2 if the budget cut the batch (the list stays first), else 1;
# seq the last taken entry's, for the client to check;
# {0, 0} when nothing matches the selection, {-2, 0} when <list> is not first
# (nothing taken: the client asks RECEIVE_MANY), -1 if removed.
# KEYS: meta ; ARGV: prefix gen sel pid limit budget pr mt
COMMIT = Script(
    "commit",
    """
local meta, P = KEYS[1], ARGV[1]
local pr, mt = ARGV[7], ARGV[8]
local c = 'c:' .. pr .. ':' .. mt
local m = redis.call('HMGET', meta, 'gen', 'bytes', 'count', c, 'lists', 'w:sw')
if m[1] ~= ARGV[2] then return -1 end
local sel, limit, budget = tonumber(ARGV[3]), tonumber(ARGV[5]), tonumber(ARGV[6])
local list = P .. ':l:' .. pr .. ':' .. mt
local queued, count, lists = tonumber(m[2]), tonumber(m[3]), tonumber(m[5])
-- entries by index, each read (LINDEX) once
local seen = {}
local function at(i)
  local e = seen[i]
  if e == nil then
    e = redis.call('LINDEX', list, i)
    seen[i] = e
  end
  return e
end
local function seq(i) return tonumber(string.sub(at(i), 1, 16)) end
local only = lists == 1 and m[4]
local k, len, run0
if only then
  local t = tonumber(mt)
  if (sel > 0 and t ~= sel) or (sel < 0 and t > -sel) then return {0, 0} end
  len = count
  k = math.min(limit, len)
  run0 = tonumber(m[4]) - queued
else
  local p, t, bound = pick(P, sel)
  if not p then return {0, 0} end
  if p ~= pr or t ~= mt then return {-2, 0} end
  -- entry ``limit`` tells whether the list is longer than the batch (else its
  -- length is needed)
  k, len = limit, math.huge
  if not at(limit) then
    len = redis.call('LLEN', list)
    k = len
  end
  if bound and k > 1 then
    bound = tonumber(bound)
    if seq(k - 1) >= bound then
      -- entry 0 is before bound (its list ranks first); find the first at or after it
      local lo, hi = 1, k - 1
      while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if seq(mid) >= bound then hi = mid else lo = mid + 1 end
      end
      k = lo
    end
  end
  run0 = tonumber(string.sub(at(0), 17, 32))
end
-- the running total before entry i (the list's total after its last entry)
local function run(i)
  if i >= len then return tonumber(m[4]) end
  return tonumber(string.sub(at(i), 17, 32))
end
local last = at(k - 1)
local size = tonumber(string.sub(last, 17, 32)) + #last - 32 - run0
local cut = 0
if size > budget and k > 1 then
  -- the most entries (at least one) whose bytes fit the budget
  local lo, hi = 1, k - 1
  while lo < hi do
    local mid = math.floor((lo + hi + 1) / 2)
    if run(mid) - run0 <= budget then lo = mid else hi = mid - 1 end
  end
  k = lo
  size = run(k) - run0
  cut = 1
  last = at(k - 1)
end
if k < len then
  redis.call('LTRIM', list, k, -1)
  if not only then redis.call('ZADD', P .. ':h:' .. pr, seq(k), mt) end
else
  redis.call('DEL', list)
  lists = popped(P, pr, mt, true, lists)
end
count = count - k
redis.call('HSET', meta, 'count', count, 'bytes', queued - size, 'rtime', now(),
  'rpid', ARGV[4], 'lists', lists)
if m[6] then wake(P, 'sw') end
local more = 1
if cut == 1 then
  more = 2
elseif k < limit then
  if count == 0 or (sel ~= 0 and not pick(P, sel)) then more = 0 end
end
return {k, more, string.sub(last, 1, 16)}
""",
)

# Put back a message that a cancelled async receive took, when its handle
# closes: at the head of its list, before every message sent. Its seq is
# negative (meta ``hseq`` counts down from 0), so a list's head still has the
# smallest seq of the priority; called newest first, the oldest ends up first.
# Capacity is not checked: the message was in the queue a moment ago.
# KEYS: meta ; ARGV: prefix gen data mtype priority
RETURN = Script(
    "return",
    """
local meta, P = KEYS[1], ARGV[1]
local mt, pr = ARGV[4], ARGV[5]
local c = 'c:' .. pr .. ':' .. mt
local m = redis.call('HMGET', meta, 'gen', 'bytes', 'count', 'hseq', 'ttl', c, 'lists', 'w:rw')
if m[1] ~= ARGV[2] then return -1 end
local h = tonumber(m[4] or '0') - 1
local head = string.format('%016d', h)
local list = P .. ':l:' .. pr .. ':' .. mt
local size = string.len(ARGV[3])
-- Its running total is the old head's minus its own length (it may go below
-- zero); in an empty list, the list's total so far.
local first = redis.call('LINDEX', list, 0)
local run
if first then
  run = tonumber(string.sub(first, 17, 32)) - size
else
  run = tonumber(m[6] or '0')
  redis.call('HSET', meta, c, run + size)
end
local lists = tonumber(m[7])
if redis.call('LPUSH', list, head .. string.format('%016d', run) .. ARGV[3]) == 1 then
  lists = index(P, pr, mt, head, ttl_of(m[5]), lists)
else
  redis.call('ZADD', P .. ':h:' .. pr, h, mt)
end
redis.call('HSET', meta, 'count', tonumber(m[3]) + 1, 'bytes', tonumber(m[2]) + size, 'hseq', h,
  'lists', lists)
if m[8] then wake(P, 'rw') end
return 1
""",
)

# KEYS: meta ; ARGV: gen max_messages max_message_size max_bytes mode uid gid pid layout ttl
# (ttl: milliseconds for a temporary queue, '' otherwise)
CREATE = Script(
    "create",
    """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'max_messages', ARGV[2],
  'max_message_size', ARGV[3], 'max_bytes', ARGV[4], 'mode', ARGV[5], 'uid', ARGV[6],
  'gid', ARGV[7], 'count', 0, 'bytes', 0, 'seq', 0, 'ctime', now(), 'cpid', ARGV[8],
  'layout', ARGV[9], 'lists', 0)
if ARGV[10] and ARGV[10] ~= '' then
  redis.call('HSET', KEYS[1], 'ttl', ARGV[10])
  redis.call('PEXPIRE', KEYS[1], ARGV[10])
end
return 1
""",
)

# Every key of the queue, for REMOVE and RENEW: meta first.
_ALL_KEYS = """
local function all_keys(P)
  local keys = {P .. ':meta', P .. ':prios', P .. ':types', P .. ':rw', P .. ':sw'}
  local prios = redis.call('ZRANGE', P .. ':prios', 0, -1)
  for i = 1, #prios do keys[#keys + 1] = P .. ':h:' .. prios[i] end
  local types = redis.call('ZRANGE', P .. ':types', 0, -1)
  for i = 1, #types do
    local tl = P .. ':tl:' .. types[i]
    keys[#keys + 1] = tl
    local ps = redis.call('ZRANGE', tl, 0, -1)
    for j = 1, #ps do keys[#keys + 1] = P .. ':l:' .. ps[j] .. ':' .. types[i] end
  end
  return keys
end
"""

# KEYS: meta (the rest are derived; extra keys are accepted and ignored) ;
# ARGV: prefix gen ('' = whatever incarnation)
REMOVE = Script(
    "remove",
    _ALL_KEYS
    + """
local g = redis.call('HGET', KEYS[1], 'gen')
if not g or (ARGV[2] ~= '' and g ~= ARGV[2]) then return 0 end
local P = ARGV[1]
local keys = all_keys(P)
for i = 1, #keys do
  if keys[i] ~= P .. ':rw' and keys[i] ~= P .. ':sw' then redis.call('UNLINK', keys[i]) end
end
wake(P, 'rw')
wake(P, 'sw')
return 1
""",
)

# A temporary queue's handle keeps it alive: every key gets the expiry again.
# KEYS: meta ; ARGV: prefix gen ; returns 0 if the queue is gone (or another one)
RENEW = Script(
    "renew",
    _ALL_KEYS
    + """
local m = redis.call('HMGET', KEYS[1], 'gen', 'ttl')
if m[1] ~= ARGV[2] or not m[2] then return 0 end
local keys = all_keys(ARGV[1])
for i = 1, #keys do redis.call('PEXPIRE', keys[i], m[2]) end
return 1
""",
)

# KEYS: meta (extra keys are accepted and ignored) ; ARGV: gen
STAT = Script(
    "stat",
    """
local m = redis.call('HMGET', KEYS[1], 'gen', 'count')
if m[1] ~= ARGV[1] then return -1 end
return {tonumber(m[2]), redis.call('HGETALL', KEYS[1])}
""",
)
