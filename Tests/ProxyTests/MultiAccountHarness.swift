import FakeIamport
import Foundation
import HTTP1
import Iamport
import Logging
import Proxy
import Server
import TestSupport
import Upstream

/// Three accounts in one in-process proxy, as a config file would give:
/// `shop-a` (V1) and `shop-b` (V2) on the shared listener, told apart by
/// their client tokens, and `shop-c` (V1, tier ABC) on its own listener
/// without a client token. A FakeIamport serves the V1 accounts, a
/// FakePortOneV2 the V2 one.
final class MultiAccountHarness: @unchecked Sendable {
    let v1: FakeIamport
    let v2: FakePortOneV2
    let proxy: ProxyService
    let logs = LogSink()
    let v1Port: Int
    let v2Port: Int

    static let apiKey = "multi-key-5a1c"
    static let v1Secret = "multi-v1-secret-77e2"
    static let v2Secret = "multi-v2-secret-0c9d41"
    static let tokenA = "client-token-shop-a-1f"
    static let tokenB = "client-token-shop-b-2e"

    init(allowA: [String] = [], tierC: String? = "ABC") throws {
        v1 = FakeIamport(configuration: .init(apiKey: Self.apiKey, apiSecret: Self.v1Secret))
        v1Port = try v1.start().port
        v2 = FakePortOneV2(configuration: .init(apiSecret: Self.v2Secret))
        v2Port = try v2.start().port
        let logger = Logger(label: "test") { [logs] label in
            LineLogHandler(label: label, level: .trace, format: .text, sink: logs)
        }
        proxy = try ProxyService(
            configuration: ProxyConfiguration(
                server: Server.Configuration(listen: "127.0.0.1:0"),
                upstream: UpstreamConfiguration(baseURL: "http://127.0.0.1:9", timeout: .milliseconds(5000)),
                accounts: Self.accounts(v1Port: v1Port, v2Port: v2Port, allowA: allowA, tierC: tierC), loopCount: 2),
            logger: logger)
        waitForTokens()
    }

    static func accounts(v1Port: Int, v2Port: Int, allowA: [String] = [], tierC: String? = "ABC",
                         v1Secret: String = v1Secret, v2Secret: String = v2Secret, tokenB: String = tokenB) -> [AccountConfiguration] {
        [
            AccountConfiguration(
                name: "shop-a", api: .v1, upstream: "http://127.0.0.1:\(v1Port)", apiKey: Secret(apiKey),
                apiSecret: Secret(v1Secret), clientToken: Secret(tokenA), allow: try! AllowList(allowA)),
            AccountConfiguration(
                name: "shop-b", api: .v2, upstream: "http://127.0.0.1:\(v2Port)", apiSecret: Secret(v2Secret),
                clientToken: Secret(tokenB)),
            AccountConfiguration(
                name: "shop-c", api: .v1, upstream: "http://127.0.0.1:\(v1Port)", listen: "127.0.0.1:0",
                apiKey: Secret(apiKey), apiSecret: Secret(v1Secret), tier: tierC),
        ]
    }

    var sharedPort: Int { proxy.address.port }
    var ownPort: Int { proxy.ownAddresses["shop-c"]!.port }

    func waitForTokens(seconds: Double = 5) {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let answer = try? HTTPTestClient.get(port: sharedPort, "/_proxy/readyz")
            if answer?.status == 200 { return }
            usleep(10_000)
        }
    }

    func stop() {
        proxy.shutdown(grace: .seconds(1))
        v1.stop()
        v2.stop()
    }

    /// What the V2 fake's echo endpoint saw.
    static func v2Echoed(_ answer: HTTPTestClient.Answer) -> (method: String, headers: [(String, String)], body: String)? {
        guard let json = answer.json, let headers = json["headers"] as? [[String]] else { return nil }
        return (json["method"] as? String ?? "", headers.map { ($0[0], $0[1]) }, json["body"] as? String ?? "")
    }
}
