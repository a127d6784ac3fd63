import Dispatch
import EventLoops
import Synchronization
import Upstream

/// An event loop of its own and an `UpstreamClient` on it, for tests that
/// drive the client directly, without the proxy.
final class UpstreamTestLoop: @unchecked Sendable {
    let loop: EventLoop
    let client: UpstreamClient

    init(_ configuration: UpstreamConfiguration) throws {
        loop = try EventLoop(index: 0)
        loop.start()
        client = UpstreamClient(loop: loop, configuration: configuration)
    }

    /// Sends `request` and waits for its outcome (nil if none came in time).
    func send(_ request: UpstreamRequest, seconds: Double = 5) -> Result<UpstreamResponse, UpstreamError>? {
        let outcome = Mutex<Result<UpstreamResponse, UpstreamError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        loop.execute { [client] in
            client.send(request) { result in
                outcome.withLock { $0 = result }
                done.signal()
            }
        }
        _ = done.wait(timeout: .now() + seconds)
        return outcome.withLock { $0 }
    }

    /// Runs `body` on the loop and returns its value.
    func onLoop<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        let box = Mutex<T?>(nil)
        let done = DispatchSemaphore(value: 0)
        loop.execute {
            box.withLock { $0 = body() }
            done.signal()
        }
        done.wait()
        return box.withLock { $0! }
    }

    func idleCount() -> Int {
        onLoop { [client] in client.idleConnectionCount }
    }

    func stop() {
        onLoop { [client] in client.close() }
        loop.stopAndJoin()
    }
}

extension UpstreamRequest {
    static func get(_ path: String, headers: String = "") -> UpstreamRequest {
        UpstreamRequest(method: .get, methodName: "GET", pathAndQuery: Array(path.utf8), headerLines: Array(headers.utf8), body: nil)
    }
}
