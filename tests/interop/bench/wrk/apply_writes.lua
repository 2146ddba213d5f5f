-- applyWrites: batches of creates to one account. Arguments: did token batch
dofile(string.gsub(debug.getinfo(1, "S").source:sub(2), "[^/]*$", "") .. "common.lua")

local n = 0
function init(args)
  did, token, batch = args[1], args[2], tonumber(args[3])
  headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
end

function request()
  n = n + 1
  local writes = {}
  for i = 1, batch do
    writes[i] = '{"$type":"com.atproto.repo.applyWrites#create","collection":"app.bsky.feed.post","value":{"$type":"app.bsky.feed.post","text":"batch '
      .. id .. ' ' .. n .. ' post ' .. i .. '","createdAt":"2026-01-01T00:00:00.000Z"}}'
  end
  local body = '{"repo":"' .. did .. '","writes":[' .. table.concat(writes, ",") .. "]}"
  return wrk.format("POST", "/xrpc/com.atproto.repo.applyWrites", headers, body)
end
