import HTTP1
@testable import Upstream

let second: UInt64 = 1_000_000_000

/// An exchange state machine fed scripted bytes and a manual clock: the
/// upstream's side of a socket, without one.
struct ExchangeScript {
    typealias Action = ExchangeStateMachine.Action

    var machine: ExchangeStateMachine
    /// The scratch buffer the client lends the machine for chunked bodies.
    var decoded: [UInt8] = []
    /// What the sink received of a streamed body.
    var streamed: [UInt8] = []

    static let requestBytes = 100

    /// An exchange started at time 0 with a 30 s timeout, its request written.
    init(method: Method = .get, resendable: Bool? = nil, onReusedConnection: Bool = false,
         maxResponseBytes: Int = 64 << 20, timeout: UInt64 = 30 * second) {
        machine = ExchangeStateMachine(
            totalBytes: Self.requestBytes,
            resendable: resendable ?? (method == .get || method == .head || method == .options),
            isHead: method == .head, maxResponseBytes: maxResponseBytes, timeout: timeout, deadline: timeout)
        machine.onReusedConnection = onReusedConnection
        _ = machine.wrote(Self.requestBytes)
    }

    mutating func feed(_ text: String) -> Action { feed(Array(text.utf8)) }

    mutating func feed(_ bytes: [UInt8]) -> Action {
        let action = bytes.withUnsafeBytes { machine.bytesRead($0, decoded: &decoded) }
        if case .forward(let piece, _) = action {
            switch piece {
            case .input(let range): streamed += bytes[range]
            case .decoded: streamed += decoded
            }
        }
        return action
    }

    /// Feeds `text` in pieces of `size` bytes; the actions, in order.
    mutating func feed(_ text: String, inPiecesOf size: Int) -> [Action] {
        let bytes = Array(text.utf8)
        return stride(from: 0, to: bytes.count, by: size).map { feed(Array(bytes[$0..<min($0 + size, bytes.count)])) }
    }
}

extension ExchangeStateMachine.Action {
    var delivered: (answer: UpstreamResponse, reusable: Bool)? {
        if case .deliver(let answer, let reusable) = self { return (answer, reusable) }
        return nil
    }

    var handedOver: UpstreamResponse? {
        if case .handOver(let answer) = self { return answer }
        return nil
    }

    var failure: UpstreamError? {
        if case .fail(let error) = self { return error }
        return nil
    }

    var isNone: Bool {
        if case .none = self { return true }
        return false
    }

    var isRetry: Bool {
        if case .retry = self { return true }
        return false
    }

    var forwarded: (piece: ExchangeStateMachine.BodyPiece, then: ExchangeStateMachine.AfterPiece)? {
        if case .forward(let piece, let then) = self { return (piece, then) }
        return nil
    }
}

extension ExchangeStateMachine.State {
    var isDone: Bool {
        if case .done = self { return true }
        return false
    }

    var isAwaitingHead: Bool {
        if case .awaitingHead = self { return true }
        return false
    }

    var sent: Int? {
        if case .writing(let sent) = self { return sent }
        return nil
    }
}
