-- HAProxy's answer to a request whose declared body is larger than the site accepts: 413 at
-- once, then the rest of the body read and dropped before the connection closes.
--
-- HAProxy 2.6 (Debian 12's) closes the connection right after its own answer without reading
-- what the client is still sending; the kernel then answers the unread data with a reset,
-- and a client that was still sending may lose the 413 it had not read yet. Reading the body
-- to its end (for DRAIN_SECONDS at most; `timeout client` ends a client that stops sending)
-- lets the client finish, read the 413, and close on its own.

local DRAIN_SECONDS = 10
local MESSAGE = "413 Payload Too Large: the request body is larger than this site accepts.\n"

core.register_service("refuse_oversize", "http", function(applet)
    applet:set_status(413)
    applet:add_header("content-type", "text/plain; charset=utf-8")
    applet:add_header("content-length", tostring(#MESSAGE))
    applet:add_header("connection", "close")
    applet:start_response()
    applet:send(MESSAGE)
    local deadline = core.now().sec + DRAIN_SECONDS
    while core.now().sec < deadline do
        local chunk = applet:receive()
        if chunk == nil or #chunk == 0 then
            break
        end
    end
end)
