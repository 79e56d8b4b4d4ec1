-- Mints access tokens through POST /oauth/token and appends each one to
-- TOKENS_FILE, for the fresh-token verify run.
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BASIC")
local out

init = function(args)
  out = io.open(os.getenv("TOKENS_FILE"), "a")
  out:setvbuf("line")
end

response = function(status, headers, body)
  local token = body:match('"access_token":"([^"]+)"')
  if token then out:write(token, "\n") end
end
