import FakeIamport
import Foundation
import HTTP1
import Iamport
import Proxy
import TestSupport
import Testing

/// `--max-connections` bounds the process, whatever its listeners.
@Suite struct ListenersShareTheConnectionLimitTests {
    @Test func theLimitCountsEveryListenersConnections() throws {
        let proxy = try ProxyService(
            configuration: ProxyConfiguration(
                server: .init(listen: "127.0.0.1:0", maxConnections: 2),
                upstream: .init(baseURL: "http://127.0.0.1:9"),
                accounts: [
                    AccountConfiguration(name: "a", api: .v2, apiSecret: Secret("s")),
                    AccountConfiguration(name: "b", api: .v2, listen: "127.0.0.1:0", apiSecret: Secret("s")),
                ],
                loopCount: 1),
            logger: .init(label: "test"))
        defer { proxy.shutdown(grace: .seconds(1)) }
        let own = try #require(proxy.ownAddresses["b"]).port
        let held = [try HTTPTestClient(port: proxy.address.port), try HTTPTestClient(port: own)]
        Thread.sleep(forTimeInterval: 0.1)
        for port in [proxy.address.port, own] {
            let refused = try HTTPTestClient.request(port: port, "GET /_proxy/healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(refused.status == 503)
            #expect(refused.header("X-Iamport-Proxy-Error") == "overloaded")
        }
        try held[1].send("GET /_proxy/healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try held[1].read().status == 200)
    }
}
