-- getRecord (public, no auth): cycles over the given record keys. Arguments: did rkey1 rkey2 ...
dofile(string.gsub(debug.getinfo(1, "S").source:sub(2), "[^/]*$", "") .. "common.lua")

local paths = {}
local n = 0
function init(args)
  for i = 2, #args do
    paths[#paths + 1] = "/xrpc/com.atproto.repo.getRecord?repo=" .. args[1]
      .. "&collection=app.bsky.feed.post&rkey=" .. args[i]
  end
  n = id
end

function request()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1])
end
