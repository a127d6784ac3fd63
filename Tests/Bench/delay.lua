-- A slow upstream for the benchmark: answers after 20 ms without blocking
-- (core.msleep yields), and counts getToken calls (GET /_count reads them).
local token_calls = 0
local payment = nil

core.register_init(function()
    local f = io.open(os.getenv("BENCH_PAYMENT_FILE"), "r")
    payment = f:read("*a")
    f:close()
end)

core.register_service("slow", "http", function(applet)
    local body
    if applet.path == "/users/getToken" then
        token_calls = token_calls + 1
        local now = os.time()
        body = string.format('{"code":0,"message":null,"response":{"access_token":"bench-token","now":%d,"expired_at":%d}}', now, now + 1800)
    elseif applet.path == "/_count" then
        body = tostring(token_calls)
    else
        core.msleep(20)
        body = payment
    end
    applet:set_status(200)
    applet:add_header("content-type", "application/json; charset=utf-8")
    applet:add_header("content-length", tostring(#body))
    applet:start_response()
    applet:send(body)
end)
