import Server
import Upstream

/// Joins a streamed upstream answer to the client's connection: body bytes
/// one way; room and cancellation the other. On the request's loop.
final class StreamBridge: UpstreamBodySink, ResponseBodySource {
    private let upstream: UpstreamBodyStream
    var writer: ResponseBodyWriter?

    init(_ upstream: UpstreamBodyStream) {
        self.upstream = upstream
    }

    func body(_ bytes: UnsafeRawBufferPointer) -> Bool {
        writer?.write(bytes) ?? false
    }

    func end() {
        writer?.finish()
        writer = nil
    }

    func failed(_ error: UpstreamError) {
        writer?.abort()
        writer = nil
    }

    func resume() {
        upstream.resume()
    }

    func cancel() {
        writer = nil
        upstream.cancel()
    }
}
