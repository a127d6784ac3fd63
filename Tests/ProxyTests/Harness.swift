import FakeIamport
import Foundation
import HTTP1
import Iamport
import Logging
import Proxy
import Server
import TestSupport
import Upstream

/// A FakeIamport and an in-process proxy in front of it, both on 127.0.0.1
/// with free ports, and a log kept in memory.
final class Harness: @unchecked Sendable {
    let fake: FakeIamport
    let proxy: ProxyService
    let logs = LogSink()
    let port: Int
    let fakePort: Int
    static let apiKey = "test-key-7f3a"
    static let apiSecret = "test-secret-9b2c41d"

    init(
        fake fakeConfiguration: FakeIamport.Configuration = .init(apiKey: Harness.apiKey, apiSecret: Harness.apiSecret),
        clientToken: String? = nil, allow: [String] = [], upstreamTimeoutMs: Int = 5000,
        limits: Limits = Limits(), server: ((inout Server.Configuration) -> Void)? = nil,
        upstreamURL: String? = nil, waitForToken: Bool = true, logLevel: Logger.Level = .trace,
        logFormat: LineLogHandler.Format = .text, fakeIdleTimeout: Double = 60, batchedLog: LogSink? = nil
    ) throws {
        fake = FakeIamport(configuration: fakeConfiguration)
        fakePort = try fake.start(idleTimeout: .seconds(fakeIdleTimeout)).port
        var serverConfiguration = Server.Configuration(listen: "127.0.0.1:0", limits: limits)
        server?(&serverConfiguration)
        let configuration = ProxyConfiguration(
            server: serverConfiguration,
            upstream: UpstreamConfiguration(
                baseURL: upstreamURL ?? "http://127.0.0.1:\(fakePort)", timeout: .milliseconds(upstreamTimeoutMs)),
            apiKey: Secret(Harness.apiKey), apiSecret: Secret(Harness.apiSecret),
            clientToken: clientToken.map(Secret.init), allowList: try AllowList(allow), loopCount: 2)
        // A batching sink gets the lines instead of `logs`, batched on the loops as in the executable.
        let sink = batchedLog ?? logs
        var logger = Logger(label: "test") { label in
            LineLogHandler(label: label, level: logLevel, format: logFormat, sink: sink)
        }
        logger.logLevel = logLevel
        proxy = try ProxyService(configuration: configuration, logger: logger, logSink: batchedLog)
        port = proxy.address.port
        if waitForToken { self.waitForToken() }
    }

    func waitForToken(seconds: Double = 5) {
        let deadline = Date().addingTimeInterval(seconds)
        while !proxy.tokens.status().valid && Date() < deadline { usleep(5_000) }
    }

    func stop() {
        proxy.shutdown(grace: .seconds(1))
        fake.stop()
    }

    func get(_ path: String, headers: [String: String] = [:]) throws -> HTTPTestClient.Answer {
        try HTTPTestClient.get(port: port, path, headers: headers)
    }

    func post(_ path: String, json: String, headers: [String: String] = [:]) throws -> HTTPTestClient.Answer {
        try HTTPTestClient.post(port: port, path, json: json, headers: headers)
    }

    func raw(_ text: String) throws -> HTTPTestClient.Answer {
        try HTTPTestClient.request(port: port, text)
    }

    /// The echo endpoint's view of what reached the upstream.
    static func echoed(_ answer: HTTPTestClient.Answer) -> (method: String, target: String, headers: [(String, String)], body: String)? {
        guard let response = answer.json?["response"] as? [String: Any],
            let headers = response["headers"] as? [[String]]
        else { return nil }
        return (response["method"] as? String ?? "", response["target"] as? String ?? "",
                headers.map { ($0[0], $0[1]) }, response["body"] as? String ?? "")
    }
}

extension Array where Element == (String, String) {
    func values(_ name: String) -> [String] {
        filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
    }
}
