import FakeIamport
import Foundation
import TestSupport
import Testing

@Suite(.serialized) struct ObservabilityTests {
    @Test func neitherTheSecretNorAnyTokenAppearsInLogsMetricsOrAnswers() throws {
        let clientToken = "client-token-never-logged-71c2"
        let h = try Harness(clientToken: clientToken, logLevel: .trace)
        defer { h.stop() }
        var answers: [String] = []
        func keep(_ a: HTTPTestClient.Answer) { answers.append(a.text + a.headers.map { "\($0.name): \($0.value)" }.joined()) }
        // Local getToken, right and wrong; every header form; a revocation and
        // renewal; a failing token endpoint; errors of every kind.
        keep(try h.post("/users/getToken", json: #"{"imp_key":"k","imp_secret":"\#(clientToken)"}"#))
        keep(try h.post("/users/getToken", json: #"{"imp_key":"k","imp_secret":"wrong-guess"}"#))
        keep(try h.get("/payments/imp_1", headers: ["Authorization": "Bearer \(clientToken)"]))
        keep(try h.get("/payments/imp_1", headers: ["X-ImpTokenHeader": clientToken]))
        keep(try h.get("/payments/imp_1?_token=\(clientToken)", headers: ["Authorization": clientToken]))
        h.fake.revokeTokens()
        keep(try h.post("/payments/cancel", json: "{}", headers: ["Authorization": clientToken]))
        h.fake.revokeTokens()
        h.fake.failTokens(status: 500, message: "token endpoint down")
        keep(try h.get("/payments/imp_2", headers: ["Authorization": clientToken]))
        keep(try h.get("/_proxy/readyz"))
        h.fake.failTokens(status: nil)
        Thread.sleep(forTimeInterval: 1.2)
        keep(try h.get("/payments/imp_3", headers: ["Authorization": clientToken, "X-Fake-Fault": "reset"]))
        keep(try h.raw("GET /payments/x HTTP/1.1\r\nHost: a\r\nAuthorization: \(clientToken)\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"))
        let metrics = try h.get("/_proxy/metrics").text
        let log = h.logs.capturedText
        let issued = h.fake.issuedTokens
        #expect(issued.count >= 2)
        for secret in [Harness.apiSecret, clientToken] + issued {
            #expect(!log.contains(secret), "log leaks \(secret.prefix(6))…")
            #expect(!metrics.contains(secret))
            #expect(!answers.contains { $0.contains(secret) && secret != clientToken }, "an answer leaks a token")
        }
        #expect(log.contains("token obtained"))
        #expect(log.contains("token fetch failed"))
    }

    @Test func jsonLogLines() throws {
        let h = try Harness(logFormat: .json)
        defer { h.stop() }
        _ = try h.get("/payments/imp_json", headers: ["X-Request-Id": "json-req-1"])
        let lines = h.logs.capturedText.split(separator: "\n")
        #expect(!lines.isEmpty)
        var sawAccess = false
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
            #expect(object["ts"] is String)
            #expect(object["level"] is String)
            #expect(object["msg"] is String)
            if object["request_id"] as? String == "json-req-1" {
                sawAccess = true
                #expect(object["method"] as? String == "GET")
                #expect(object["path"] as? String == "/payments/imp_json")
                #expect(object["status"] as? String == "200")
                #expect(object["upstream_status"] as? String == "200")
                #expect(object["renewed"] as? String == "false")
                #expect(object["duration_ms"] is String)
                #expect(object["bytes"] is String)
            }
        }
        #expect(sawAccess)
    }

    @Test func accessLogPathHasNoQuery() throws {
        let h = try Harness()
        defer { h.stop() }
        _ = try h.get("/payments/imp_q?secret_param=zzz")
        #expect(h.logs.capturedText.contains("path=/payments/imp_q "))
        #expect(!h.logs.capturedText.contains("zzz"))
    }

    @Test func metricsInPrometheusFormat() throws {
        let h = try Harness()
        defer { h.stop() }
        for n in 0..<3 { _ = try h.get("/payments/imp_\(n)") }
        _ = try h.get("/payments/imp_missing")
        h.fake.revokeTokens()
        _ = try h.get("/payments/imp_r")
        let answer = try h.get("/_proxy/metrics")
        #expect(answer.status == 200)
        #expect(answer.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        let text = answer.text
        for needle in [
            #"iamport_proxy_requests_total{status="200",method="GET"} 4"#,
            #"iamport_proxy_requests_total{status="404",method="GET"} 1"#,
            "iamport_proxy_request_duration_seconds_bucket{le=",
            "iamport_proxy_request_duration_seconds_count 5",
            "iamport_proxy_upstream_duration_seconds_count 6",
            #"iamport_proxy_token_fetches_total{result="success",reason="startup"} 1"#,
            #"iamport_proxy_token_fetches_total{result="success",reason="unauthorized"} 1"#,
            "iamport_proxy_token_renewals_after_401_total 1",
            "iamport_proxy_replays_total 1",
            "iamport_proxy_open_connections 1",
            "iamport_proxy_token_valid 1",
            "# TYPE iamport_proxy_token_expires_in_seconds gauge",
            "iamport_proxy_upstream_connections_opened",
        ] {
            #expect(text.contains(needle), "missing: \(needle)")
        }
        let expiresLine = try #require(text.split(separator: "\n").first { $0.hasPrefix("iamport_proxy_token_expires_in_seconds ") })
        let seconds = Double(expiresLine.split(separator: " ")[1]) ?? 0
        #expect(seconds > 1700 && seconds <= 1800)
        #expect(text.split(separator: "\n").allSatisfy { $0.hasPrefix("#") || $0.hasPrefix("iamport_proxy_") })
    }

    @Test func readinessFollowsTheToken() throws {
        let h = try Harness()
        defer { h.stop() }
        #expect(try h.get("/_proxy/readyz").status == 200)
        h.fake.revokeTokens()
        h.fake.failTokens(status: 401, message: "invalid imp_key or imp_secret")
        _ = try h.get("/payments/imp_1")  // 401 -> renewal fails
        let notReady = try h.get("/_proxy/readyz")
        #expect(notReady.status == 503)
        #expect(notReady.text.contains("invalid imp_key or imp_secret"))
        h.fake.failTokens(status: nil)
        let deadline = Date().addingTimeInterval(5)
        while (try h.get("/_proxy/readyz").status) != 200 && Date() < deadline { usleep(100_000) }
        #expect(try h.get("/_proxy/readyz").status == 200, "recovers by itself, without requests")
    }
}
