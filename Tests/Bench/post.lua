-- make bench: every request a refund call, POST /payments/cancel with a
-- small JSON body (55 bytes), as the SDKs send it.
wrk.method = "POST"
wrk.body = '{"imp_uid":"imp_bench","reason":"bench","amount":1004}'
wrk.headers["Content-Type"] = "application/json"
