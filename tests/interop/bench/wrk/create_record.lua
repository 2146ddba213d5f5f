-- createRecord: thread i posts to account i. Arguments: did1 token1 did2 token2 ...
-- Every record is different (thread id and a counter in the text).
dofile(string.gsub(debug.getinfo(1, "S").source:sub(2), "[^/]*$", "") .. "common.lua")

local n = 0
function init(args)
  local k = (id % (#args / 2)) * 2
  did, token = args[k + 1], args[k + 2]
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
end

function request()
  n = n + 1
  local body = '{"repo":"' .. did .. '","collection":"app.bsky.feed.post","record":{"$type":"app.bsky.feed.post","text":"bench post '
    .. id .. ' ' .. n .. '","createdAt":"2026-01-01T00:00:00.000Z"}}'
  return wrk.format("POST", "/xrpc/com.atproto.repo.createRecord", headers, body)
end
