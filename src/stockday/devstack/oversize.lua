-- HAProxy's answer to a request whose declared body is larger than the site accepts: 413 at
-- once, in the frontend's own words and form (JSON for the upload script, a page otherwise),
-- then the rest of the body read and dropped before the connection closes.
--
-- HAProxy 2.6 (Debian 12's) closes the connection right after its own answer without reading
-- what the client is still sending; the kernel then answers the unread data with a reset, and
-- a client that was still sending may lose the 413 it had not read yet. Reading the body to
-- its end (for DRAIN_SECONDS at most; `timeout client` ends a client that stops sending) lets
-- the client finish, read the 413, and close on its own.

local DRAIN_SECONDS = 10
local READ_BYTES = 16384

local PAGE = [[<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Upload too large - Stock-of-the-Day</title>
</head><body><h1>Upload too large</h1>
<p>That form is too large: logos may be at most %s MB.</p>
<p><a href="/stocks/new">Back to the form</a></p></body></html>
]]

local function wants_json(applet)
    local accept = applet.headers["accept"]
    local first = accept and accept[0] or ""
    return applet.path:sub(1, 8) == "/uploads" or first:find("application/json", 1, true)
end

local function refusal(applet)
    local limit = tonumber(applet:get_var("txn.upload_limit")) or 0
    if wants_json(applet) then
        local detail = string.format("upload is larger than the limit of %d bytes", limit)
        return "application/json", string.format('{"detail":"%s"}', detail)
    end
    return "text/html; charset=utf-8", string.format(PAGE, string.format("%g", limit / 1048576))
end

core.register_service("refuse_oversize", "http", function(applet)
    local content_type, body = refusal(applet)
    applet:set_status(413)
    applet:add_header("content-type", content_type)
    applet:add_header("content-length", tostring(#body))
    applet:add_header("x-content-type-options", "nosniff")
    applet:add_header("cache-control", "no-store")
    applet:add_header("connection", "close")
    applet:start_response()
    applet:send(body)
    local deadline = core.now().sec + DRAIN_SECONDS
    while core.now().sec < deadline do
        -- A buffer at a time: receive() without a size would gather the whole body first.
        local chunk = applet:receive(READ_BYTES)
        if chunk == nil or #chunk == 0 then
            break
        end
    end
end)
