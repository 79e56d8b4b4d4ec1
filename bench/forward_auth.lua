-- A forward-auth sub-request as Caddy sends it, with one reused token
-- (TOKEN). Also sent to the plain handler, so both parse the same headers.
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["X-Forwarded-Method"] = "PROPFIND"
wrk.headers["X-Forwarded-Proto"] = "https"
wrk.headers["X-Forwarded-Host"] = "dav.example.com"
wrk.headers["X-Forwarded-Uri"] = "/canister/photos/"
wrk.headers["X-Forwarded-For"] = "198.51.100.7"
