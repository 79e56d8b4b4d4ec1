-- Forward-auth sub-requests, each with a token not seen before: the tokens
-- minted into TOKENS_FILE by mint.lua, one per request, in order.
local tokens = {}
local next_token = 0

init = function(args)
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    tokens[#tokens + 1] = line
  end
end

request = function()
  next_token = next_token % #tokens + 1
  return wrk.format("GET", nil, {
    ["Authorization"] = "Bearer " .. tokens[next_token],
    ["X-Forwarded-Method"] = "PROPFIND",
    ["X-Forwarded-Proto"] = "https",
    ["X-Forwarded-Host"] = "dav.example.com",
    ["X-Forwarded-Uri"] = "/canister/photos/",
    ["X-Forwarded-For"] = "198.51.100.7",
  })
end
