import CCurl
import EventLoops

/// A socket of libcurl's, in the loop's epoll set while libcurl connects it.
final class CurlSocket: EventHandler {
    let socket: Socket
    unowned let curl: CurlMulti
    var events: UInt32?

    init(socket: Socket, curl: CurlMulti) {
        self.socket = socket
        self.curl = curl
    }

    func handleEvent(_ events: UInt32) {
        var bits: Int32 = 0
        if events & (EventLoop.readable | EventLoop.hangup) != 0 { bits |= CURL_CSELECT_IN }
        if events & EventLoop.writable != 0 { bits |= CURL_CSELECT_OUT }
        if events & EventLoop.error != 0 { bits |= CURL_CSELECT_ERR }
        curl.socketAction(socket.descriptor, events: bits)
    }
}
